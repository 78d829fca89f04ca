// The signed-in key (in this tab's sessionStorage only), whether it is an admin's, and the
// calls made with it: a 401 forgets the key and shows the sign-in page.

import { ApiError, SignedOut, request } from "./api.js";

const KEY_STORAGE = "vidgate.apiKey";

export class Session {
  #onSignOut;
  #key;
  #admin = false;
  #models = null;
  #notice = null;

  /** `onSignOut` runs once the key is forgotten (the router then shows the sign-in page). */
  constructor(onSignOut) {
    this.#onSignOut = onSignOut;
    this.#key = sessionStorage.getItem(KEY_STORAGE);
  }

  get key() {
    return this.#key;
  }

  get admin() {
    return this.#admin;
  }

  /** Why the key was forgotten, for the sign-in page to say (null: nothing to say). */
  get notice() {
    return this.#notice;
  }

  /** A call with the session's key; a 401 for that key signs out and throws SignedOut. */
  async call(path, options = {}) {
    const secret = this.#key;
    try {
      return await request(path, { ...options, key: secret });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401 && this.#key === secret) {
        this.signOut(`Signed out: ${error.message}`);
        throw new SignedOut(error.message);
      }
      throw error;
    }
  }

  /** Keeps a key already checked, then asks whether it is an admin's. */
  async signIn(key) {
    sessionStorage.setItem(KEY_STORAGE, key);
    this.#key = key;
    this.#models = null;
    this.#notice = null;
    await this.detectAdmin();
  }

  signOut(notice) {
    sessionStorage.removeItem(KEY_STORAGE);
    this.#key = null;
    this.#admin = false;
    this.#models = null;
    this.#notice = notice;
    this.#onSignOut();
  }

  async detectAdmin() {
    try {
      await this.call("admin/accounts");
      this.#admin = true;
    } catch (error) {
      if (error instanceof SignedOut) throw error;
      this.#admin = false; // 403 for everyone else
    }
  }

  /** The models the server offers, fetched once per sign-in. */
  async models() {
    if (this.#models === null) this.#models = (await this.call("v1/models")).data;
    return this.#models;
  }
}
