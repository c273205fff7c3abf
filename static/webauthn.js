// WebAuthn ceremonies for the hosted pages: no framework, no CDN. Buttons carry their endpoints:
//   <button data-passkey="authenticate|register" data-options="URL" data-verify="URL">
// The server answers the verify call with {"redirect": URL} or {"error": message}. The page's own words
// (in its language) are its <meta name="passkey-NAME" content="..."> elements (_webauthn_head.html).
"use strict";

const said = (name) => document.querySelector(`meta[name="passkey-${name}"]`).content;

const toBase64url = (buffer) =>
  btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

const fromBase64url = (text) => {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)).buffer;
};

const descriptors = (list) => (list || []).map((item) => ({ ...item, id: fromBase64url(item.id) }));

function creationOptions(json) {
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    user: { ...json.user, id: fromBase64url(json.user.id) },
    excludeCredentials: descriptors(json.excludeCredentials),
  };
}

function requestOptions(json) {
  return { ...json, challenge: fromBase64url(json.challenge), allowCredentials: descriptors(json.allowCredentials) };
}

function credentialJSON(credential) {
  const response = credential.response;
  const encoded = { clientDataJSON: toBase64url(response.clientDataJSON) };
  if (response.attestationObject) {
    encoded.attestationObject = toBase64url(response.attestationObject);
    encoded.transports = response.getTransports ? response.getTransports() : [];
  } else {
    encoded.authenticatorData = toBase64url(response.authenticatorData);
    encoded.signature = toBase64url(response.signature);
    if (response.userHandle) encoded.userHandle = toBase64url(response.userHandle);
  }
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    response: encoded,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json().catch(() => ({ error: said("unreadable") }));
  if (!response.ok && !answer.error) answer.error = said("refused");
  return answer;
}

function explain(error) {
  if (error && error.name === "NotAllowedError") return said("cancelled");
  if (error && error.name === "InvalidStateError") return said("registered");
  if (error && error.name === "SecurityError") return said("wrong-site");
  return said("failed") + " " + (error && error.message ? error.message : said("unknown"));
}

async function ceremony(button) {
  const status = document.getElementById("passkey-error");
  status.textContent = "";
  button.disabled = true;
  try {
    const options = await post(button.dataset.options);
    if (options.error) throw new Error(options.error);
    const register = button.dataset.passkey === "register";
    const credential = register
      ? await navigator.credentials.create({ publicKey: creationOptions(options) })
      : await navigator.credentials.get({ publicKey: requestOptions(options) });
    const nameField = document.getElementById("passkey-name");
    const answer = await post(button.dataset.verify, {
      credential: credentialJSON(credential),
      name: nameField ? nameField.value : undefined,
    });
    if (answer.error) throw new Error(answer.error);
    window.location.assign(answer.redirect);
  } catch (error) {
    // Our own messages (from the server) are plain Errors; the browser's are DOMExceptions.
    status.textContent = error.name === "Error" ? error.message : explain(error);
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  if (!window.PublicKeyCredential) return;
  for (const section of document.querySelectorAll("[data-needs-webauthn]")) section.hidden = false;
  for (const button of document.querySelectorAll("[data-passkey]")) {
    button.addEventListener("click", () => ceremony(button));
  }
});
