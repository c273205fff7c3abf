// Front-Channel Logout 1.0: once every application's logout page has loaded in its hidden iframe
// (or after a few seconds, whichever comes first), continue to the application's address if any.
document.addEventListener("DOMContentLoaded", () => {
  const frames = Array.from(document.querySelectorAll("iframe.frontchannel-logout"));
  const next = document.getElementById("continue");
  const status = document.getElementById("frontchannel-status");
  let waiting = frames.length;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    if (status) status.textContent = status.dataset.done;  // in the page's language
    if (next) window.location.replace(next.href);
  };
  frames.forEach((frame) => frame.addEventListener("load", () => { waiting -= 1; if (waiting <= 0) finish(); }));
  window.setTimeout(finish, 5000);
});
