// stockade's ES module guard for a profile's `allowed_modules`: a module.register() resolve hook,
// registered by guard.js (node 20.6 and later), that sees static `import` and dynamic `import()`
// which bypass Module._load. The rules arrive through initialize(). Imports by modules installed
// under /usr are not checked; the user's modules import only allowed modules, and files only
// inside the work dir.
//
// Hygiene, not a boundary: the sandbox around node contains the code (docs/profiles.md).
import { writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

let rules = null;

export async function initialize(data) {
  rules = data;
}

const strip = (name) => (name.startsWith('node:') ? name.slice(5) : name);

function allowed(specifier, parentURL) {
  if (/^(\.{1,2}\/|\/|file:)/.test(specifier)) {
    const url = new URL(specifier, parentURL);
    return url.protocol === 'file:' && fileURLToPath(url).startsWith(rules.work);
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(specifier) && !specifier.startsWith('node:')) {
    return false; // data:, http: and the like
  }
  const name = strip(specifier);
  return rules.allowed.some((a) => name === a || name.startsWith(a + '/'));
}

function report(specifier, parentURL) {
  const shown = /^[\w@./:-]{1,128}$/.test(specifier)
    ? specifier
    : JSON.stringify(String(specifier).slice(0, 80));
  let file = parentURL;
  try {
    file = fileURLToPath(parentURL);
  } catch (_) {
    // not a file URL: show it as it is
  }
  try {
    writeSync(2, `${rules.mark}Blocked import: ${shown} at ${file}:0:0\n`);
  } catch (_) {
    // stderr closed: the error thrown still says what happened.
  }
  return shown;
}

export async function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL;
  // No parent: the entry point. `data:`: module.register's own default parent.
  const trusted = !parent || parent === 'data:' || parent.startsWith('file:///usr/');
  if (rules && !trusted && !allowed(specifier, parent)) {
    const shown = report(specifier, parent);
    const err = new Error(`Blocked import: ${shown}`);
    err.code = 'ERR_MODULE_NOT_FOUND';
    throw err;
  }
  return nextResolve(specifier, context);
}
