import { z } from 'zod';

/** `platform:chatId`, for example `telegram:12345` or `http:client-7`. */
export const AddressSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,31}:[^\s]{1,256}$/, 'expected an address "platform:chatId", e.g. "telegram:12345"');

export type Address = z.infer<typeof AddressSchema>;

export interface ParsedAddress {
  readonly platform: string;
  readonly chatId: string;
}

export function parseAddress(address: Address): ParsedAddress {
  const colon = address.indexOf(':');
  return { platform: address.slice(0, colon), chatId: address.slice(colon + 1) };
}

export function makeAddress(platform: string, chatId: string): Address {
  return AddressSchema.parse(`${platform}:${chatId}`);
}
