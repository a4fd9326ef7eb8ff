import { sameSecret } from '../../core/ids.ts';
import { makeAddress } from '../../core/address.ts';
import { ApiError } from './errors.ts';

export interface ApiClient {
  /** The name from API_KEYS; also the client's user id (`http:<name>`) and address. */
  readonly name: string;
  readonly userId: string;
  readonly address: string;
  readonly isAdmin: boolean;
}

/** Checks `Authorization: Bearer <secret>` against API_KEYS, in constant time per key. */
export class ApiKeyAuth {
  private readonly keys: { name: string; secret: Buffer }[];

  constructor(
    apiKeys: ReadonlyMap<string, string>,
    private readonly adminUsers: ReadonlySet<string>,
  ) {
    this.keys = [...apiKeys].map(([name, secret]) => ({ name, secret: Buffer.from(secret) }));
  }

  authenticate(header: string | undefined): ApiClient {
    const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    if (!match?.[1]) throw new ApiError('UNAUTHORIZED');
    const given = Buffer.from(match[1]);
    let found: string | undefined;
    for (const key of this.keys) {
      if (sameSecret(key.secret, given)) found = key.name;
    }
    if (found === undefined) throw new ApiError('UNAUTHORIZED');
    const address = makeAddress('http', found);
    return { name: found, userId: address, address, isAdmin: this.adminUsers.has(address) };
  }
}
