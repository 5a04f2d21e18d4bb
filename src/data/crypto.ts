// Authenticated encryption of records at rest: AES-256-GCM under the data key,
// a fresh random 96-bit nonce for every write (never reused under one key), and
// associated data that names the record, so a ciphertext moved to another row or
// another user fails authentication instead of decrypting there. The key id is
// stored beside each ciphertext so that keys can be rotated later.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import type { Keys } from '../auth/keys.js'

export interface Sealed {
  keyId: string
  nonce: Buffer
  /** Ciphertext followed by the 16-byte authentication tag. */
  ciphertext: Buffer
}

const ALGORITHM = 'aes-256-gcm'
const NONCE_BYTES = 12
const TAG_BYTES = 16

export function seal(keys: Keys, associatedData: string, plaintext: string): Sealed {
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv(ALGORITHM, keys.dataEncryption, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(Buffer.from(associatedData, 'utf8'))
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return { keyId: keys.dataEncryptionKeyId, nonce, ciphertext: Buffer.concat([body, cipher.getAuthTag()]) }
}

/**
 * The plaintext of a sealed record. Throws a plain Error (a 500 whose details
 * stay in the log) when the key is unknown or the record fails authentication:
 * tampered bytes never come back as garbage.
 */
export function open(keys: Keys, associatedData: string, sealed: Sealed): string {
  if (sealed.keyId !== keys.dataEncryptionKeyId) throw new Error(`record sealed under unknown key ${sealed.keyId}`)
  if (sealed.nonce.length !== NONCE_BYTES || sealed.ciphertext.length < TAG_BYTES) {
    throw new Error('sealed record is malformed')
  }
  const bodyLength = sealed.ciphertext.length - TAG_BYTES
  const decipher = createDecipheriv(ALGORITHM, keys.dataEncryption, sealed.nonce, { authTagLength: TAG_BYTES })
  decipher.setAAD(Buffer.from(associatedData, 'utf8'))
  decipher.setAuthTag(sealed.ciphertext.subarray(bodyLength))
  try {
    return Buffer.concat([decipher.update(sealed.ciphertext.subarray(0, bodyLength)), decipher.final()]).toString(
      'utf8',
    )
  } catch {
    throw new Error('sealed record failed authentication')
  }
}
