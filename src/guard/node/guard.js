// stockade's run-time guard for a profile's `allowed_modules` and `blocked_functions` (node).
//
// Preloaded with `--require` through NODE_OPTIONS. The lines above this comment were generated
// from the profile: ALLOWED (null: any module), BLOCKED, WORK (the work dir) and MARK (the prefix
// of the lines the supervisor reads back from stderr into the verdict).
//
// It wraps Module._load, which every CommonJS `require` goes through. Requires made by code
// installed under /usr (node's own library, Debian's packaged modules) are not checked; the
// user's code (the main script, files in the work dir, `-e` code) requires only what the profile
// allows, and its own files by relative path. ES modules (static `import`, dynamic `import()`)
// are checked by loader.mjs, a module.register() resolve hook (node 20.6 and later). Not covered:
// `process.binding`, native addons. `eval` and `Function` are also refused by V8 itself
// (`--disallow-code-generation-from-strings`).
//
// This is hygiene, not a boundary: the sandbox around node is what contains the code
// (docs/profiles.md).
'use strict';

(function install() {
  const Module = require('module');
  const fs = require('fs');
  const path = require('path');
  const work = WORK.endsWith('/') ? WORK : WORK + '/';
  const strip = (name) => (name.startsWith('node:') ? name.slice(5) : name);
  const allowedNames = ALLOWED === null ? null : ALLOWED.map(strip);

  function where(file) {
    const stack = new Error().stack.split('\n').slice(1);
    const line =
      stack.find((l) => file && l.includes(file)) || stack.find((l) => !l.includes(__filename) && !l.includes('(node:'));
    const m = line && /(?:\(|at )([^()]*?):(\d+):(\d+)\)?\s*$/.exec(line);
    return m ? `${m[1]}:${m[2]}:${m[3]}` : `${file || '[eval]'}:0:0`;
  }

  function report(kind, name, file) {
    const shown = /^[\w@./:-]{1,128}$/.test(name) ? name : JSON.stringify(String(name).slice(0, 80));
    try {
      fs.writeSync(2, `${MARK}${kind}: ${shown} at ${where(file)}\n`);
    } catch (_) {
      // stderr closed: the error thrown still says what happened.
    }
    return shown;
  }

  function allowed(request, parent) {
    if (request.startsWith('./') || request.startsWith('../') || request.startsWith('/')) {
      const base = parent && parent.filename ? path.dirname(parent.filename) : process.cwd();
      return path.resolve(base, request).startsWith(work);
    }
    const name = strip(request);
    return allowedNames.some((a) => name === a || name.startsWith(a + '/'));
  }

  if (allowedNames !== null && typeof Module.register === 'function') {
    // ES modules (`import`, `import()`) do not go through Module._load: a resolve hook sees them.
    const loader = require('url').pathToFileURL(path.join(__dirname, 'loader.mjs'));
    Module.register(loader, { data: { allowed: allowedNames, work, mark: MARK } });
  }

  if (allowedNames !== null) {
    const load = Module._load;
    Module._load = function guardedLoad(request, parent, isMain) {
      const file = parent && parent.filename;
      // `node -e` and `-p` set up their code with a require from a module that has no file.
      const bootstrap = !file && parent && parent.id === '<eval>';
      const trusted = bootstrap || (typeof file === 'string' && file.startsWith('/usr/'));
      if (!isMain && !trusted && !allowed(String(request), parent)) {
        const shown = report('Blocked import', String(request), file);
        const err = new Error(`Blocked import: ${shown}`);
        // The code a program already checks for an optional module that is missing.
        err.code = 'MODULE_NOT_FOUND';
        throw err;
      }
      return load.apply(this, arguments);
    };
  }

  function refuse(name) {
    return function blocked() {
      const shown = report('Blocked function', name, null);
      throw new EvalError(`Blocked function: ${shown}`);
    };
  }
  if (BLOCKED.includes('eval')) {
    globalThis.eval = refuse('eval');
  }
  if (BLOCKED.includes('Function')) {
    const blocked = refuse('Function');
    Object.defineProperty(Function.prototype, 'constructor', { value: blocked });
    globalThis.Function = blocked;
  }
})();
