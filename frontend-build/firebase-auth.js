// The parts of the official Firebase JS SDK the dashboard uses. `npm ci && npm run build`
// bundles them into frontend/vendor/firebase-auth.js, which is committed and served by the
// service itself (no CDN, so the Content-Security-Policy stays 'self' for scripts).
export { initializeApp } from "firebase/app";
export {
  GoogleAuthProvider,
  browserLocalPersistence,
  browserPopupRedirectResolver,
  connectAuthEmulator,
  indexedDBLocalPersistence,
  initializeAuth,
  onAuthStateChanged,
  signInWithEmailAndPassword,
  signInWithPopup,
  signOut,
} from "firebase/auth";
