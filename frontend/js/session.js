// Sign-in with Firebase Authentication (AUTH_MODE=firebase): the form, who is signed in, sign-out,
// and a fresh ID token on every API call. The SDK is the bundle the service serves itself.
import { sendIdTokens } from "./api.js";
import {
  GoogleAuthProvider,
  browserLocalPersistence,
  browserPopupRedirectResolver,
  connectAuthEmulator,
  indexedDBLocalPersistence,
  initializeApp,
  initializeAuth,
  onAuthStateChanged,
  signInWithEmailAndPassword,
  signInWithPopup,
  signOut,
} from "../vendor/firebase-auth.js";

const panel = document.getElementById("sign-in");
const form = document.getElementById("sign-in-form");
const email = document.getElementById("sign-in-email");
const password = document.getElementById("sign-in-password");
const submit = document.getElementById("sign-in-submit");
const googleButton = document.getElementById("sign-in-google");
const errorBox = document.getElementById("sign-in-error");
const account = document.getElementById("account");
const accountName = document.getElementById("account-name");

// Firebase's error codes, in words a person can act on. Which of email or password was wrong
// is not said (projects with email enumeration protection report both as invalid-credential).
const WRONG_CREDENTIALS = "The email or password is not right.";
const MESSAGES = {
  "auth/invalid-credential": WRONG_CREDENTIALS,
  "auth/wrong-password": WRONG_CREDENTIALS,
  "auth/user-not-found": WRONG_CREDENTIALS,
  "auth/invalid-email": "That is not a valid email address.",
  "auth/user-disabled": "This account is disabled.",
  "auth/too-many-requests": "Too many attempts. Wait a moment, then try again.",
  "auth/network-request-failed": "Sign-in can't reach Firebase right now. Check your connection and try again.",
  "auth/popup-closed-by-user": "The Google sign-in window was closed before signing in.",
};

function showError(error) {
  errorBox.textContent = MESSAGES[error.code] ?? "Signing in did not work. Please try again.";
  errorBox.hidden = false;
}

async function attempt(signIn) {
  errorBox.hidden = true;
  submit.disabled = true;
  try {
    await signIn();
    form.reset();
  } catch (error) {
    showError(error);
  } finally {
    submit.disabled = false;
  }
}

// `config` is GET /auth/config; onSignedIn(user) and onSignedOut() switch the rest of the page.
export function initSession(config, { onSignedIn, onSignedOut }) {
  const app = initializeApp(config.firebase);
  // Explicit persistence and no popup resolver until Google sign-in is used: nothing is loaded
  // from other origins while signing in with a password.
  const auth = initializeAuth(app, { persistence: [indexedDBLocalPersistence, browserLocalPersistence] });
  if (config.emulator) connectAuthEmulator(auth, config.emulator, { disableWarnings: true });
  sendIdTokens(
    async (fresh) => (auth.currentUser ? auth.currentUser.getIdToken(fresh) : null),
    () => {
      // The service refused this user's token even when new: back to the form, saying why.
      errorBox.textContent = "Your session has ended: sign in again.";
      errorBox.hidden = false;
      signOut(auth);
    },
  );

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(() => signInWithEmailAndPassword(auth, email.value.trim(), password.value));
  });
  googleButton.hidden = !config.google_sign_in;
  googleButton.addEventListener("click", () =>
    attempt(() => signInWithPopup(auth, new GoogleAuthProvider(), browserPopupRedirectResolver)));
  document.getElementById("sign-out").addEventListener("click", () => signOut(auth));

  onAuthStateChanged(auth, (user) => {
    panel.hidden = Boolean(user);
    account.hidden = !user;
    accountName.textContent = user ? user.email || user.displayName || "Signed in" : "";
    if (user) onSignedIn(user);
    else onSignedOut();
  });
}
