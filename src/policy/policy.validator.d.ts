import type { ErrorObject } from 'ajv';

/** The policy schema compiled to code at build time by scripts/build-validator.mjs. */
declare const validate: ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };
export default validate;
