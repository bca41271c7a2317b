// The service's API, called by relative URLs so the page works under any host name or path.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status; // 0 when the service could not be reached at all
    this.code = code;
  }
}

const UNREACHABLE = "No answer came from the service. Check your connection, or try again in a moment.";
const UNREADABLE = "The service sent an answer this page can't read.";

// An error body the API wrote ({error, message}), or a plain sentence when a proxy answered instead.
function errorFromResponse(status, bodyText) {
  try {
    const body = JSON.parse(bodyText);
    if (body && typeof body.message === "string") return new ApiError(status, body.error || "error", body.message);
  } catch {
    // not JSON: fall through
  }
  if (status >= 500) return new ApiError(status, "unavailable", "The service isn't working right now. Please try again in a moment.");
  return new ApiError(status, "error", `The service answered with an unexpected status (${status}).`);
}

const SESSION_ENDED = "Your session has ended: sign in again.";

// With AUTH_MODE=firebase, session.js hands over how to get an ID token (`fresh`: a new one, not the cached
// one) and what to do when the service refuses the caller even with a new token: sign in again.
let idToken = null;
let sessionEnded = () => {};

export function sendIdTokens(getToken, onSessionEnded) {
  idToken = getToken;
  sessionEnded = onSessionEnded;
}

async function authorization(fresh = false) {
  let token = null;
  try {
    token = idToken ? await idToken(fresh) : null;
  } catch {
    // The token cannot be renewed (the account was disabled or its sessions revoked): the session is over.
    sessionEnded();
    throw new ApiError(401, "sign_in_required", SESSION_ENDED);
  }
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// `send(headers)` -> Response. A 401 to a signed-in caller is tried once more with a new token (the one it had
// may just have expired); refused again, the session is over and the page returns to the sign-in form.
async function withToken(send) {
  let response;
  try {
    response = await send(await authorization());
    if (response.status === 401 && idToken) {
      response = await send(await authorization(true));
      if (response.status === 401) sessionEnded();
    }
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError(0, "unreachable", UNREACHABLE);
  }
  return response;
}

async function request(url, options = {}) {
  const response = await withToken((headers) => fetch(url, { ...options, headers: { Accept: "application/json", ...headers } }));
  if (!response.ok) throw errorFromResponse(response.status, await response.text());
  if (response.status === 204) return null;
  try {
    return await response.json();
  } catch {
    throw new ApiError(response.status, "bad_response", UNREADABLE);
  }
}

export const getHealth = () => request("health");

export const getAuthConfig = () => request("auth/config");

export function listAnalyses(limit, cursor) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (cursor) params.set("cursor", cursor);
  return request(`analyses?${params}`);
}

export const getAnalysis = (id) => request(`analyses/${encodeURIComponent(id)}`);

export const deleteAnalysis = (id) => request(`analyses/${encodeURIComponent(id)}`, { method: "DELETE" });

export const reanalyze = (id) => request(`analyses/${encodeURIComponent(id)}/reanalyze`, { method: "POST" });

// A kept image (slice.jpg, heatmap.jpg) as a Blob: fetched with the caller's token, which an <img src>
// cannot send. Rejects with ApiError (404 image_missing for analyses made before images were kept).
export const getImage = (id, name) => getBlob(`analyses/${encodeURIComponent(id)}/images/${name}`);

// A done study's answer as DICOM, the very files sent to the PACS: `sr.dcm` or `key-images.zip`, as a Blob.
export const getStudyDicom = (id, name) => getBlob(`studies/${encodeURIComponent(id)}/dicom/${name}`);

async function getBlob(url) {
  const response = await withToken((headers) => fetch(url, { headers }));
  if (!response.ok) throw errorFromResponse(response.status, await response.text());
  return response.blob();
}

// XMLHttpRequest rather than fetch: it reports upload progress and can be aborted mid-upload.
// Returns {promise, abort}; the promise rejects with ApiError, or with code "aborted" on cancel.
export function uploadForAnalysis(file, windowName, onProgress) {
  const xhr = new XMLHttpRequest();
  let cancelled = false;
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", "analyze");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress({ phase: "upload", fraction: event.loaded / event.total });
    });
    xhr.upload.addEventListener("load", () => onProgress({ phase: "analysing", fraction: 1 }));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new ApiError(xhr.status, "bad_response", UNREADABLE));
        }
      } else {
        if (xhr.status === 401 && idToken) sessionEnded();
        reject(errorFromResponse(xhr.status, xhr.responseText));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "unreachable", UNREACHABLE)));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "The upload was cancelled.")));

    const form = new FormData();
    form.append("file", file, file.name);
    form.append("window", windowName);
    authorization().then(
      (headers) => {
        if (cancelled) return reject(new ApiError(0, "aborted", "The upload was cancelled."));
        for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
        xhr.send(form);
      },
      (error) => reject(error instanceof ApiError ? error : new ApiError(0, "unreachable", UNREACHABLE)),
    );
  });
  return { promise, abort: () => { cancelled = true; xhr.abort(); } };
}

// Studies: a series of DICOM files (or one ZIP) analysed in the background.

export function listStudies(limit, cursor) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (cursor) params.set("cursor", cursor);
  return request(`studies?${params}`);
}

export const getStudy = (id) => request(`studies/${encodeURIComponent(id)}`);

export const deleteStudy = (id) => request(`studies/${encodeURIComponent(id)}`, { method: "DELETE" });

// One slice's 400 px image or heatmap overlay of a done study, as a Blob (fetched with the caller's token).
export const getSliceImage = (id, index, name) => getBlob(`studies/${encodeURIComponent(id)}/slices/${index}/${name}`);

// Files of a folder (each sent under its path in the folder) or one ZIP, with upload progress.
// Returns {promise, abort}; the promise resolves to the queued study (202).
export function uploadStudy(files, windowName, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", "studies");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new ApiError(xhr.status, "bad_response", UNREADABLE));
        }
      } else {
        reject(errorFromResponse(xhr.status, xhr.responseText));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "unreachable", UNREACHABLE)));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "The upload was cancelled.")));
    const form = new FormData();
    for (const file of files) form.append("file", file, file.relativePath || file.webkitRelativePath || file.name);
    form.append("window", windowName);
    authorization().then(
      (headers) => {
        for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
        xhr.send(form);
      },
      () => reject(new ApiError(0, "unreachable", UNREACHABLE)),
    );
  });
  return { promise, abort: () => xhr.abort() };
}
