// Shows each <time data-local-time datetime="..."> in the viewer's own time zone and the page's language; the
// server writes UTC, which stays for readers without script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const language = document.documentElement.lang || undefined;  // the page's, not the browser's
  const format = new Intl.DateTimeFormat(language, { dateStyle: "medium", timeStyle: "short" });
  for (const element of document.querySelectorAll("time[data-local-time]")) {
    const moment = new Date(element.getAttribute("datetime"));
    if (!Number.isNaN(moment.getTime())) {
      element.title = element.textContent;
      element.textContent = format.format(moment);
    }
  }
});
