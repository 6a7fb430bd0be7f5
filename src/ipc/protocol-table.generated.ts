// GENERATED from native/common/protocol.def by scripts/gen-protocol.mjs — do not edit; run `npm run gen:protocol`.
// The call table, field lists and limits of the wire protocol (docs/protocol.md); src/ipc/protocol.ts
// is the codec that walks them. test/unit/codec.test.ts fails when this file is stale.

export const VERSION_MIN = 1;
export const VERSION_MAX = 1;
export const HELLO_MAGIC = 0x31474253;
export const MAX_FRAME = 4 * 1024 * 1024;
export const HEADER_SIZE = 10;
export const MIN_LENGTH = HEADER_SIZE - 4;
export const MAX_LENGTH = MAX_FRAME - 4;
export const KIND_REQUEST = 0;
export const KIND_REPLY = 1;
export const MAX_KEY_HANDLE = 255;
export const CKU_USER_TYPE = 1;

export type WireType = 'u8' | 'u16' | 'u32' | 'u64' | 'bytes' | 'str';
/** SB_FIELD_MAX: a bytes/str of at most `max` bytes; SB_FIELD_IS: an integer that must equal `is`. */
export type FieldRule = { readonly max: number } | { readonly is: number };
export type FieldType = WireType | { readonly array: Struct };
export type Field = readonly [name: string, type: FieldType, rule?: FieldRule];
export type Struct = ReadonlyArray<Field>;

// Records in wire order (SB_RECORD), nested records first.
export const MECHANISM: Struct = [
  ['type', 'u64'],
  ['min_key_size', 'u32'],
  ['max_key_size', 'u32'],
  ['flags', 'u32'],
];
export const ATTRIBUTE: Struct = [
  ['type', 'u64'],
  ['value', 'bytes'],
];
export const OBJECT: Struct = [
  ['key_handle', 'bytes', { max: MAX_KEY_HANDLE }],
  ['attributes', { array: ATTRIBUTE }],
];
export const SLOT: Struct = [
  ['slot_id', 'u32'],
  ['slot_description', 'str'],
  ['manufacturer', 'str'],
  ['token_label', 'str'],
  ['token_model', 'str'],
  ['token_serial', 'str'],
  ['token_flags', 'u32'],
  ['mechanisms', { array: MECHANISM }],
  ['objects', { array: OBJECT }],
];
export const HELLO_REQUEST: Struct = [
  ['magic', 'u32', { is: HELLO_MAGIC }],
  ['min_version', 'u16'],
  ['max_version', 'u16'],
  ['client', 'str'],
];
export const HELLO_REPLY: Struct = [
  ['version', 'u16'],
  ['server', 'str'],
];
export const INVENTORY_REQUEST: Struct = [];
export const INVENTORY_REPLY: Struct = [
  ['generation', 'u64'],
  ['slots', { array: SLOT }],
];
export const SIGN_REQUEST: Struct = [
  ['key_handle', 'bytes', { max: MAX_KEY_HANDLE }],
  ['mechanism', 'u64'],
  ['hash_alg', 'u64'],
  ['mgf', 'u64'],
  ['salt_len', 'u32'],
  ['data', 'bytes'],
];
export const SIGN_REPLY: Struct = [
  ['signature', 'bytes'],
];
export const LOGIN_REQUEST: Struct = [
  ['slot_id', 'u32'],
  ['user_type', 'u64'],
  ['pin', 'bytes'],
];
export const LOGIN_REPLY: Struct = [];
export const AUTHORIZE_REQUEST: Struct = [
  ['key_handle', 'bytes', { max: MAX_KEY_HANDLE }],
  ['pin', 'bytes'],
];
export const AUTHORIZE_REPLY: Struct = [
  ['signatures', 'u32'],
];

// The call table (SB_CALL).
export const CALLS = {
  HELLO: { code: 0x01, request: HELLO_REQUEST, reply: HELLO_REPLY },
  GET_INVENTORY: { code: 0x02, request: INVENTORY_REQUEST, reply: INVENTORY_REPLY },
  SIGN: { code: 0x03, request: SIGN_REQUEST, reply: SIGN_REPLY },
  LOGIN: { code: 0x04, request: LOGIN_REQUEST, reply: LOGIN_REPLY },
  AUTHORIZE: { code: 0x05, request: AUTHORIZE_REQUEST, reply: AUTHORIZE_REPLY },
} as const satisfies Record<string, { code: number; request: Struct; reply: Struct }>;

/** The decoded shape of every record (u64 → bigint, bytes → Buffer, str → string, array → array). */
export interface Records {
  Mechanism: { type: bigint; min_key_size: number; max_key_size: number; flags: number };
  Attribute: { type: bigint; value: Buffer };
  Object: { key_handle: Buffer; attributes: Records['Attribute'][] };
  Slot: { slot_id: number; slot_description: string; manufacturer: string; token_label: string; token_model: string; token_serial: string; token_flags: number; mechanisms: Records['Mechanism'][]; objects: Records['Object'][] };
  HelloRequest: { magic: number; min_version: number; max_version: number; client: string };
  HelloReply: { version: number; server: string };
  InventoryRequest: Record<string, never>;
  InventoryReply: { generation: bigint; slots: Records['Slot'][] };
  SignRequest: { key_handle: Buffer; mechanism: bigint; hash_alg: bigint; mgf: bigint; salt_len: number; data: Buffer };
  SignReply: { signature: Buffer };
  LoginRequest: { slot_id: number; user_type: bigint; pin: Buffer };
  LoginReply: Record<string, never>;
  AuthorizeRequest: { key_handle: Buffer; pin: Buffer };
  AuthorizeReply: { signatures: number };
}
export interface RequestBodies {
  HELLO: Records['HelloRequest'];
  GET_INVENTORY: Record<string, never>;
  SIGN: Records['SignRequest'];
  LOGIN: Records['LoginRequest'];
  AUTHORIZE: Records['AuthorizeRequest'];
}
export interface ReplyBodies {
  HELLO: Records['HelloReply'];
  GET_INVENTORY: Records['InventoryReply'];
  SIGN: Records['SignReply'];
  LOGIN: Record<never, never>;
  AUTHORIZE: Records['AuthorizeReply'];
}
