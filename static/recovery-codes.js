// Copy and Print for freshly shown recovery codes; without script, Download still works. The status
// line's words, in the page's language, are its data-copied attribute.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const codes = () => [...document.querySelectorAll("#recovery-codes code")].map((code) => code.textContent).join("\n");
  const status = document.getElementById("copy-status");
  const copy = document.querySelector("[data-copy-codes]");
  if (copy && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", async () => {
      await navigator.clipboard.writeText(codes());
      status.textContent = status.dataset.copied;
    });
  }
  const print = document.querySelector("[data-print-codes]");
  if (print) {
    print.hidden = false;
    print.addEventListener("click", () => window.print());
  }
});
