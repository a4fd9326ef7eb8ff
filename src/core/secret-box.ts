/**
 * Authenticated encryption of short strings (AES-256-GCM) under a key derived from the operator's
 * SECRET_KEY. Every sealed value is bound to an `aad` (additional authenticated data, e.g. who owns it
 * and under which name): opening with another aad, another key, or after any change to the sealed
 * text fails with a SecretBoxError instead of returning garbage.
 *
 * @example
 * const box = new SecretBox(config.secretKey);
 * const sealed = box.seal('ghp_123', 'user-1\nGITHUB_TOKEN'); // 'v1.<iv>.<tag>.<ciphertext>'
 * box.open(sealed, 'user-1\nGITHUB_TOKEN'); // 'ghp_123'
 * box.open(sealed, 'user-2\nGITHUB_TOKEN'); // throws SecretBoxError (code SECRET_OPEN_FAILED)
 */
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { ConfigError, SwitchboardError } from './errors.ts';

/** Shortest SECRET_KEY accepted. */
export const MIN_SECRET_KEY_LENGTH = 16;

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HKDF_SALT = 'switchboard/user-env/salt/v1';
const HKDF_INFO = 'switchboard user env aes-256-gcm key v1';
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** A sealed value could not be opened: wrong key, tampered or malformed data, or another aad. */
export class SecretBoxError extends SwitchboardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SECRET_OPEN_FAILED', message, options);
  }
}

export class SecretBox {
  readonly #key: KeyObject;

  /** @throws ConfigError when `secretKey` is shorter than {@link MIN_SECRET_KEY_LENGTH} characters. */
  constructor(secretKey: string) {
    if (secretKey.length < MIN_SECRET_KEY_LENGTH) {
      throw new ConfigError(`SECRET_KEY must be at least ${MIN_SECRET_KEY_LENGTH} characters long`);
    }
    const derived = hkdfSync('sha256', Buffer.from(secretKey, 'utf8'), HKDF_SALT, HKDF_INFO, 32);
    this.#key = createSecretKey(Buffer.from(derived));
  }

  /** Encrypts `plaintext` bound to `aad`; a fresh random IV each call, so equal inputs seal differently. */
  seal(plaintext: string, aad: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [VERSION, iv.toString('base64url'), tag.toString('base64url'), ciphertext.toString('base64url')].join('.');
  }

  /** Decrypts what {@link seal} returned for the same `aad`. @throws SecretBoxError otherwise. */
  open(sealed: string, aad: string): string {
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== VERSION || !parts.every((part) => BASE64URL.test(part))) {
      throw new SecretBoxError('sealed value is malformed or has an unknown version');
    }
    const iv = Buffer.from(parts[1] ?? '', 'base64url');
    const tag = Buffer.from(parts[2] ?? '', 'base64url');
    const ciphertext = Buffer.from(parts[3] ?? '', 'base64url');
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
      throw new SecretBoxError('sealed value is malformed (bad IV or tag length)');
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new SecretBoxError('cannot open sealed value: wrong key, tampered data or different context', { cause: err });
    }
  }
}
