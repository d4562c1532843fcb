// The pages' only script. The key is made and used here, in the browser: the server only
// ever stores the sealed `ots1` envelope (the format is docs/e2e.md). No DOM is built from
// HTML strings: the pages run under a strict CSP with Trusted Types.

const PREFIX = "ots1.";
const ASSOCIATED_DATA = new TextEncoder().encode("ots1");
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const BASE64URL_VALUES = new Map([...BASE64URL].map((char, value) => [char, value]));
// 32 symbols (Crockford's lowercase: no i, l, o, u), so one byte & 31 picks one without bias.
const PASSPHRASE_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const SERVER_KEY = /^[0-9a-f]{32}$/;

// --- The format: pure functions, exported for the tests ---------------------------------

/** Return `bytes` as base64url without padding (RFC 4648 §5). */
export function encodeBase64Url(bytes) {
  const out = [];
  for (let i = 0; i < bytes.length; i += 3) {
    const rest = bytes.length - i;
    const n = (bytes[i] << 16) | ((rest > 1 ? bytes[i + 1] : 0) << 8) | (rest > 2 ? bytes[i + 2] : 0);
    const chars = rest >= 3 ? 4 : rest + 1;
    for (let j = 0; j < chars; j++) out.push(BASE64URL[(n >> (18 - 6 * j)) & 63]);
  }
  return out.join("");
}

/** Return the bytes of unpadded base64url `text`; throw on anything else. */
export function decodeBase64Url(text) {
  if (typeof text !== "string" || text.length % 4 === 1) throw new TypeError("not unpadded base64url");
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let buffer = 0;
  let bits = 0;
  let o = 0;
  for (const char of text) {
    const value = BASE64URL_VALUES.get(char);
    if (value === undefined) throw new TypeError("not unpadded base64url");
    buffer = ((buffer << 6) | value) & 0xfff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (buffer >> bits) & 0xff;
    }
  }
  // Stray bits in the last character: one envelope has exactly one spelling.
  if (buffer & ((1 << bits) - 1)) throw new TypeError("not canonical base64url");
  return out;
}

/** Return a fresh 32-byte key. */
export function newKey() {
  return crypto.getRandomValues(new Uint8Array(KEY_BYTES));
}

function checkLength(bytes, length, what) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new TypeError(`the ${what} must be ${length} bytes`);
  }
}

/** Seal `plaintext` (a string, as UTF-8) under `keyBytes` with the given nonce. */
export async function sealWithNonce(keyBytes, nonceBytes, plaintext) {
  checkLength(keyBytes, KEY_BYTES, "key");
  checkLength(nonceBytes, NONCE_BYTES, "nonce");
  const data = typeof plaintext === "string" ? new TextEncoder().encode(plaintext) : plaintext;
  const key = await crypto.subtle.importKey("raw", keyBytes, "AES-GCM", false, ["encrypt"]);
  const params = { name: "AES-GCM", iv: nonceBytes, additionalData: ASSOCIATED_DATA, tagLength: 128 };
  const sealed = new Uint8Array(await crypto.subtle.encrypt(params, key, data));
  const envelope = new Uint8Array(NONCE_BYTES + sealed.length);
  envelope.set(nonceBytes);
  envelope.set(sealed, NONCE_BYTES);
  return PREFIX + encodeBase64Url(envelope);
}

/** Seal `plaintext` under `keyBytes` with a fresh random nonce. */
export function seal(keyBytes, plaintext) {
  return sealWithNonce(keyBytes, crypto.getRandomValues(new Uint8Array(NONCE_BYTES)), plaintext);
}

/** Return the plaintext bytes of `envelope`; throw if it is not one or the key cannot open it. */
export async function openEnvelope(keyBytes, envelope) {
  checkLength(keyBytes, KEY_BYTES, "key");
  if (typeof envelope !== "string" || !envelope.startsWith(PREFIX)) {
    throw new TypeError("not an ots1 envelope");
  }
  const data = decodeBase64Url(envelope.slice(PREFIX.length));
  if (data.length < NONCE_BYTES + TAG_BYTES) throw new TypeError("the envelope is too short");
  const key = await crypto.subtle.importKey("raw", keyBytes, "AES-GCM", false, ["decrypt"]);
  const nonce = data.subarray(0, NONCE_BYTES);
  const params = { name: "AES-GCM", iv: nonce, additionalData: ASSOCIATED_DATA, tagLength: 128 };
  return new Uint8Array(await crypto.subtle.decrypt(params, key, data.subarray(NONCE_BYTES)));
}

/** Return the largest plaintext (bytes) whose envelope fits in `maxEnvelopeBytes` (0 if none). */
export function maxPlaintextBytes(maxEnvelopeBytes) {
  // 5 + ceil(4 * (n + 28) / 3) <= max  ⇔  n + 28 <= floor(3 * (max - 5) / 4)
  const fits = Math.floor((3 * (maxEnvelopeBytes - PREFIX.length)) / 4) - NONCE_BYTES - TAG_BYTES;
  return Math.max(fits, 0);
}

/** Return 5 groups of 5 random symbols joined by `-` (125 bits). */
export function generatePassphrase() {
  const bytes = crypto.getRandomValues(new Uint8Array(25));
  const symbols = Array.from(bytes, (byte) => PASSPHRASE_ALPHABET[byte & 31]).join("");
  return symbols.match(/.{5}/g).join("-");
}

// --- Shared page helpers ----------------------------------------------------------------

const NO_CRYPTO =
  "Your browser will not encrypt on this page because it is not served over HTTPS (or from localhost). " +
  "Nothing can be shared from here: open this service over https://.";
const NO_CRYPTO_REVEAL =
  "Your browser will not decrypt on this page because it is not served over HTTPS (or from localhost). " +
  "Nothing was revealed, and revealing here would use up the secret: open this link over https://.";
const NETWORK = "Could not reach the service. Check your connection and try again.";
const NO_KEY =
  "This link has no key after the # sign. Some apps cut it off. Check the link with the sender before you " +
  "continue: revealing now would use up the secret without being able to open it.";
const BAD_KEY =
  "The link is incomplete: the key after the # sign is damaged. Check the link with the sender before you " +
  "continue: revealing now would use up the secret without being able to open it.";
const CANNOT_OPEN =
  "The link is incomplete: the secret came back but the key in the link cannot open it. " +
  "Ask the sender for the full link (it has been deleted from the server now).";

const byId = (id) => document.getElementById(id);

function hasWebCrypto() {
  return window.isSecureContext && Boolean(globalThis.crypto?.subtle);
}

function showAlert(text) {
  const alert = byId("alert");
  if (!alert.hidden && alert.textContent === text) return; // do not announce it again
  alert.textContent = "";
  alert.hidden = false;
  alert.textContent = text;
}

function clearAlert() {
  const alert = byId("alert");
  alert.hidden = true;
  alert.textContent = "";
}

function say(text) {
  byId("progress").textContent = text;
}

function setTime(element, iso) {
  element.dateTime = iso;
  element.textContent = new Date(iso).toLocaleString();
}

function lastPathSegment() {
  return location.pathname.split("/").pop();
}

async function callApi(method, path, body, headers = {}) {
  const init = {
    method,
    headers: { Accept: "application/json", ...headers },
    cache: "no-store",
    credentials: "same-origin",
    referrerPolicy: "no-referrer",
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    return { network: true };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // Not JSON (a proxy's error page): the status says enough.
  }
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  return { status: response.status, data, retryAfter: Number.isFinite(retryAfter) ? retryAfter : null };
}

function tryAgainIn(seconds) {
  if (seconds === null) return "Try again in a moment.";
  return `Try again in ${seconds} second${seconds === 1 ? "" : "s"}.`;
}

/** Words for the failures every page shares, or null. */
function commonFailure(result) {
  if (result.network) return NETWORK;
  if (result.status === 429) return `Too many requests from here. ${tryAgainIn(result.retryAfter)}`;
  if (result.status === 503) return `The service is busy. ${tryAgainIn(result.retryAfter)}`;
  return null;
}

/** The server's 422 messages (they never quote the secret or the passphrase). */
function validationMessages(data) {
  const detail = data?.detail;
  if (typeof detail === "string") return [detail];
  if (!Array.isArray(detail)) return [];
  return detail.map((item) => item?.msg).filter((msg) => typeof msg === "string");
}

async function copyField(field, done) {
  try {
    await navigator.clipboard.writeText(field.value);
    say(done);
  } catch {
    field.focus();
    field.select();
    say("Press Ctrl+C to copy.");
  }
}

// --- / : create a link ------------------------------------------------------------------

function pickTtlOptions(select, data) {
  const min = Number(data.minTtl);
  const max = Number(data.maxTtl);
  const preferred = Number(data.defaultTtl);
  for (const option of [...select.options]) {
    const ttl = Number(option.value);
    if (ttl < min || ttl > max) option.remove();
  }
  if (select.options.length === 0 && Number.isFinite(preferred)) {
    select.add(new Option(`${preferred} seconds`, String(preferred)));
  }
  const options = [...select.options];
  const chosen =
    options.find((option) => option.value === "604800") ??
    options.filter((option) => Number(option.value) <= preferred).pop() ??
    options[0];
  if (chosen) chosen.selected = true;
  return chosen?.value;
}

function setUpCreate() {
  const data = document.body.dataset;
  const form = byId("create-form");
  const secret = byId("secret");
  const passphrase = byId("passphrase");
  const ttl = byId("ttl");
  const token = byId("token");
  const createButton = byId("create");
  const needsToken = data.createAuth === "token";
  const maxEnvelope = Number(data.maxSecretBytes);
  const limit = Number.isFinite(maxEnvelope) ? maxPlaintextBytes(maxEnvelope) : Infinity;
  const defaultTtl = pickTtlOptions(ttl, data);
  const encoder = new TextEncoder();

  byId("token-field").hidden = !needsToken;
  token.required = needsToken;
  if (Number.isFinite(limit)) byId("secret-hint").textContent = `Up to ${limit} bytes.`;

  const countBytes = () => encoder.encode(secret.value).length;
  const showCount = () => {
    const used = countBytes();
    const count = byId("secret-count");
    count.textContent = `${used} bytes used.`;
    count.classList.toggle("over", used > limit);
  };
  secret.addEventListener("input", showCount);
  showCount();

  if (!hasWebCrypto()) {
    showAlert(NO_CRYPTO);
    createButton.disabled = true;
  }

  byId("generate-passphrase").addEventListener("click", () => {
    passphrase.value = generatePassphrase();
    say("A new passphrase is in the Passphrase field.");
  });

  // Not `disabled` while sending: a disabled button would drop the keyboard focus.
  let busy = false;
  const refuse = (text, field) => {
    showAlert(text);
    field?.focus();
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (createButton.disabled || busy) return;
    clearAlert();
    say("");
    if (!hasWebCrypto()) return refuse(NO_CRYPTO);
    const used = countBytes();
    if (used === 0) return refuse("Type or paste the secret to share.", secret);
    if (used > limit) {
      return refuse(`The secret is too long: ${limit} bytes at most here, yours has ${used}.`, secret);
    }
    if (passphrase.value === "") {
      const text = "Choose a passphrase, or press Generate passphrase: the reader will need it.";
      return refuse(text, passphrase);
    }
    if (needsToken && token.value === "") {
      return refuse("This service needs a creator token to create links. Ask its operator for one.", token);
    }

    busy = true;
    say("Encrypting…");
    let key = newKey();
    let result;
    try {
      const envelope = await seal(key, secret.value);
      say("Sending…");
      const headers = needsToken ? { Authorization: `Bearer ${token.value}` } : {};
      const body = { secret: envelope, passphrase: passphrase.value, ttl_seconds: Number(ttl.value) };
      result = await callApi("POST", "/generate", body, headers);
    } catch {
      result = { status: 0, data: null };
    }
    busy = false;
    say("");

    if (result.status === 200 && result.data?.secret_key && result.data?.receipt_key) {
      const { secret_key: secretKey, receipt_key: receiptKey, expires_at: expiresAt } = result.data;
      byId("link").value = `${location.origin}/s/${secretKey}#${encodeBase64Url(key)}`;
      byId("receipt-link").value = `${location.origin}/r/${receiptKey}`;
      setTime(byId("expires-at"), expiresAt);
      key.fill(0);
      key = null;
      secret.value = "";
      showCount();
      // One field named Passphrase on the page: the sender's own, now read-only, to copy.
      byId("passphrase-slot").append(byId("passphrase-block"));
      passphrase.readOnly = true;
      byId("generate-passphrase").hidden = true;
      byId("copy-passphrase").hidden = false;
      form.hidden = true;
      byId("result").hidden = false;
      byId("result-heading").focus();
      return;
    }
    key.fill(0);
    key = null;
    showAlert(createFailure(result));
  });

  byId("copy-link").addEventListener("click", () => copyField(byId("link"), "Copied the link."));
  byId("copy-receipt-link").addEventListener("click", () =>
    copyField(byId("receipt-link"), "Copied the receipt link."),
  );
  byId("copy-passphrase").addEventListener("click", () => copyField(passphrase, "Copied the passphrase."));

  byId("again").addEventListener("click", () => {
    for (const field of [byId("link"), byId("receipt-link"), passphrase]) field.value = "";
    byId("ttl-block").before(byId("passphrase-block"));
    passphrase.readOnly = false;
    byId("generate-passphrase").hidden = false;
    byId("copy-passphrase").hidden = true;
    byId("result").hidden = true;
    if (defaultTtl !== undefined) ttl.value = defaultTtl;
    form.hidden = false;
    clearAlert();
    say("");
    secret.focus();
  });
}

function createFailure(result) {
  const common = commonFailure(result);
  if (common) return common;
  const detail = result.data?.detail;
  const aboutSize =
    Array.isArray(detail) &&
    detail.some((item) => item?.loc?.at?.(-1) === "secret" && /at most/.test(item?.msg ?? ""));
  switch (result.status) {
    case 0:
      return "Your browser could not encrypt the secret. Nothing was shared.";
    case 401:
      return "The service refused this creator token. Check it, or ask its operator for a new one.";
    case 413:
      return "The secret is too long for this service. Make it shorter and try again.";
    case 422:
      if (aboutSize) return "The secret is too long for this service. Make it shorter and try again.";
      return ["The service refused this request.", ...validationMessages(result.data)].join(" ");
    case 507:
      return "The service has no room for more secrets right now. Try again later or ask its operator.";
    default:
      return `Something went wrong (HTTP ${result.status}). Nothing was shared.`;
  }
}

// --- /s/{secret_key} : reveal -----------------------------------------------------------

function setUpReveal() {
  // Take the key out of the address bar and the history before anything else.
  const fragment = location.hash.slice(1);
  history.replaceState(null, "", location.pathname);

  // A link pasted over this one that differs only after `#` does not reload the page: reload
  // it so its key is read like any other, unless a secret is already shown here.
  let revealed = false;
  window.addEventListener("hashchange", () => {
    if (!revealed) location.reload();
  });

  const secretKey = lastPathSegment();
  const form = byId("reveal-form");
  const passphrase = byId("passphrase");
  const noKey = byId("no-key");

  if (!SERVER_KEY.test(secretKey)) {
    showAlert("This link is not valid: it does not point to a secret. Check the link with the sender.");
    return;
  }
  let key = null;
  if (fragment !== "") {
    try {
      key = decodeBase64Url(fragment);
      if (key.length !== KEY_BYTES) key = null;
    } catch {
      key = null;
    }
  }
  // "keyed": the link has a key; "keyless": the reader chose to reveal a secret stored in plain.
  let mode = key ? "keyed" : "keyless";

  if (key && !hasWebCrypto()) {
    showAlert(NO_CRYPTO_REVEAL);
    return;
  }
  if (key) {
    form.hidden = false;
  } else {
    showAlert(fragment === "" ? NO_KEY : BAD_KEY);
    noKey.hidden = false;
  }

  byId("reveal-without-key").addEventListener("click", () => {
    mode = "keyless";
    noKey.hidden = true;
    byId("keyless-note").hidden = false;
    form.hidden = false;
    passphrase.focus();
  });

  let busy = false; // a reveal is on its way
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    clearAlert();
    if (passphrase.value === "") {
      showAlert("Type the passphrase the sender gave you.");
      passphrase.focus();
      return;
    }
    busy = true;
    say("Revealing…");
    const result = await callApi("POST", `/secrets/${secretKey}`, { passphrase: passphrase.value });
    passphrase.value = "";
    busy = false;
    say("");

    if (result.status !== 200 || typeof result.data?.secret !== "string") {
      showAlert(revealFailure(result));
      passphrase.focus();
      return;
    }
    revealed = true;
    form.hidden = true;
    byId("deleted").hidden = false;
    const text = result.data.secret;
    if (!text.startsWith(PREFIX)) return showSecret(text);
    if (mode === "keyless") return showAlert(CANNOT_OPEN);
    let bytes;
    try {
      bytes = await openEnvelope(key, text);
    } catch {
      return showAlert(CANNOT_OPEN);
    }
    try {
      showSecret(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch {
      showBinary(bytes);
    }
  });

  byId("copy-secret").addEventListener("click", () => copyField(byId("secret"), "Copied the secret."));
}

function showSecret(text) {
  const field = byId("secret");
  field.value = text;
  byId("result").hidden = false;
  field.focus();
}

function showBinary(bytes) {
  showAlert(
    `This secret is binary data (${bytes.length} bytes): open the link with the ots command-line client. ` +
      "It has been deleted from the server now, so save it here as a file instead.",
  );
  byId("binary").hidden = false;
  byId("save-file").addEventListener("click", () => {
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = "secret.bin";
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });
}

function revealFailure(result) {
  const common = commonFailure(result);
  if (common) return common;
  switch (result.status) {
    case 404:
      return (
        "This secret cannot be revealed: the passphrase is wrong, or the secret was already read, " +
        "has expired or was revoked. After a few wrong passphrases the secret is destroyed."
      );
    case 422:
      return ["The service refused this passphrase.", ...validationMessages(result.data)].join(" ");
    default:
      return `Something went wrong (HTTP ${result.status}). Try again.`;
  }
}

// --- /r/{receipt_key} : follow or revoke ------------------------------------------------

const STATUS_EXPLANATIONS = {
  pending: "Not read yet. You can still revoke it.",
  revealed: "The recipient read the secret; it is deleted from the server.",
  burned: "The recipient deleted the secret without reading it.",
  revoked: "You took the secret back before it was read.",
  destroyed: "Destroyed: too many wrong passphrases were tried.",
  expired: "Nobody read the secret before it expired; it is deleted.",
};
const NO_RECEIPT = "No receipt with this link: it may have been purged some days after the secret ended.";
const POLL_SECONDS = 3;

function setUpReceipt() {
  const receiptKey = lastPathSegment();
  if (!SERVER_KEY.test(receiptKey)) {
    showAlert(
      "This receipt link is not valid: it does not point to a receipt. Check that you copied all of it.",
    );
    return;
  }
  const path = `/receipts/${receiptKey}`;
  const revokeButton = byId("revoke");
  let timer = 0;
  let busy = false; // a GET or the DELETE is on its way
  let done = false; // the receipt will not change any more (or is gone)

  const schedule = (seconds) => {
    clearTimeout(timer);
    if (!done) timer = setTimeout(refresh, seconds * 1000);
  };

  // Answers a GET or the DELETE; returns true when it showed a receipt.
  const handle = (result, fallback) => {
    if (result.status === 200 && result.data?.status) {
      clearAlert();
      showReceipt(result.data);
      done = result.data.status !== "pending";
      return true;
    }
    if (result.status === 404) {
      done = true;
      byId("receipt").hidden = true;
      showAlert(NO_RECEIPT);
      return false;
    }
    showAlert(commonFailure(result) ?? fallback);
    return false;
  };

  async function refresh() {
    if (busy || done) return;
    busy = true;
    clearTimeout(timer);
    const result = await callApi("GET", path);
    busy = false;
    handle(result, `Something went wrong (HTTP ${result.status}). Retrying…`);
    schedule(Math.max(POLL_SECONDS, result.retryAfter ?? (result.network ? 10 : 0)));
  }

  revokeButton.addEventListener("click", async () => {
    if (busy || done) return;
    busy = true;
    clearTimeout(timer);
    // Not disabled meanwhile (`busy` guards it): a disabled button would drop the focus.
    say("Revoking…");
    const result = await callApi("DELETE", path);
    busy = false;
    say(handle(result, `Something went wrong (HTTP ${result.status}). Nothing was revoked.`) ? "Done." : "");
    schedule(Math.max(POLL_SECONDS, result.retryAfter ?? 0));
  });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
  refresh();
}

function showReceipt(receipt) {
  byId("status").textContent = receipt.status;
  byId("status-explanation").textContent = STATUS_EXPLANATIONS[receipt.status] ?? "";
  setTime(byId("created-at"), receipt.created_at);
  setTime(byId("expires-at"), receipt.expires_at);
  byId("closed-row").hidden = !receipt.closed_at;
  if (receipt.closed_at) setTime(byId("closed-at"), receipt.closed_at);
  byId("failed-attempts").textContent = String(receipt.failed_attempts);
  const pending = receipt.status === "pending";
  // The Revoke button is about to vanish: keep the keyboard focus on the page, by the news.
  if (!pending && byId("revoke-box").contains(document.activeElement)) byId("status-line").focus();
  byId("revoke-box").hidden = !pending;
  byId("receipt").hidden = false;
}

// --- Dispatch ---------------------------------------------------------------------------

const SET_UP = { create: setUpCreate, reveal: setUpReveal, receipt: setUpReceipt };
if (typeof document !== "undefined") SET_UP[document.body?.dataset.page]?.();
