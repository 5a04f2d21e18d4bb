// Purpose-bound keys derived from the configured secrets with HKDF, so that no
// key serves two purposes: a token signed for one purpose never verifies for
// another, and the refresh-token hash key differs from the successor key (were
// they equal, the stored hash of a token would be its successor in clear).
import { createHash, hkdfSync } from 'node:crypto'

export interface Keys {
  accessToken: Buffer
  passwordConfirmation: Buffer
  refreshTokenHash: Buffer
  refreshTokenSuccessor: Buffer
  /** Hashes device-cookie values (src/auth/device-tokens.ts) before they are stored or looked up. */
  deviceTokenHash: Buffer
  /** Hashes the tokens of mailed links (src/auth/one-time-tokens.ts) before they are stored or looked up. */
  oneTimeTokenHash: Buffer
  dataEncryption: Buffer
  /** Encrypts the private signing keys stored in the database (src/auth/signing-keys.ts). */
  signingKeyEncryption: Buffer
  /** Short public fingerprint of the signing-key encryption key, stored beside each sealed private key. */
  signingKeyEncryptionId: string
  /** Signs pagination cursors, so only cursors the server issued are read. */
  pageCursor: Buffer
  /** Short public fingerprint of the data key, stored beside each ciphertext. */
  dataEncryptionKeyId: string
}

const derive = (secret: string, purpose: string): Buffer =>
  Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), `latchkey ${purpose}`, 32))

const fingerprint = (key: Buffer): string =>
  createHash('sha256').update('latchkey key id').update(key).digest('hex').slice(0, 16)

export function deriveKeys(secrets: { jwtSecret: string; dataEncryptionKey: string }): Keys {
  const dataEncryption = derive(secrets.dataEncryptionKey, 'data encryption v1')
  const signingKeyEncryption = derive(secrets.jwtSecret, 'signing key encryption v1')
  return {
    accessToken: derive(secrets.jwtSecret, 'access token v1'),
    passwordConfirmation: derive(secrets.jwtSecret, 'password confirmation v1'),
    refreshTokenHash: derive(secrets.jwtSecret, 'refresh token hash v1'),
    refreshTokenSuccessor: derive(secrets.jwtSecret, 'refresh token successor v1'),
    deviceTokenHash: derive(secrets.jwtSecret, 'device token hash v1'),
    oneTimeTokenHash: derive(secrets.jwtSecret, 'one-time token hash v1'),
    dataEncryption,
    signingKeyEncryption,
    signingKeyEncryptionId: fingerprint(signingKeyEncryption),
    pageCursor: derive(secrets.dataEncryptionKey, 'page cursor v1'),
    dataEncryptionKeyId: createHash('sha256')
      .update('latchkey key id')
      .update(dataEncryption)
      .digest('hex')
      .slice(0, 16),
  }
}
