/**
 * The string formats the policy schema uses, as regular expressions so that the compiled
 * standalone validator (scripts/build-validator.mjs) carries them without runtime imports.
 */
export const POLICY_FORMATS: Record<string, RegExp> = {
  // A real calendar date is checked again where it matters; here: the written form.
  date: /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/,
  email: /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/,
  uri: /^[a-z][a-z0-9+.-]*:[^\s]*$/i,
};

export const POLICY_AJV_OPTIONS = { allErrors: true, strict: false, verbose: true } as const;
