// Form Post Response Mode: submit the response to the client at once (a button remains without JS).
document.addEventListener("DOMContentLoaded", () => document.forms[0].submit());
