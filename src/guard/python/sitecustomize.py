# stockade's run-time guard for a profile's `allowed_modules` and `blocked_functions`.
#
# Python imports `sitecustomize` at start-up (module `site`); stockade puts this file, read-only,
# in a directory that PYTHONPATH names first. The lines above this comment were generated from the
# profile: _ALLOWED (None: any module), _BLOCKED, _WORK (the work dir) and _MARK (the prefix of the
# lines the supervisor reads back from stderr into the verdict).
#
# Who is checked: only code whose file is outside the interpreter's own library directories (the
# sys.path entries under sys.prefix at start-up, and frozen modules). The standard library and
# installed packages import what they need; the user's code (a file in the work dir, `-c` code,
# code given to exec) imports only what the profile allows. Modules found in the work dir are the
# user's own and are allowed (their own imports are checked in turn).
#
# This is hygiene, not a boundary: Python code can undo it (ctypes, gc, frame tricks). The sandbox
# around the interpreter is what contains the code (docs/profiles.md).

import builtins as _builtins
import os as _os
import sys as _sys


def _install():
    prefixes = {_sys.prefix + "/", _sys.base_prefix + "/"}
    trusted = tuple(
        sorted(
            {
                entry.rstrip("/") + "/"
                for entry in _sys.path
                if entry and any(entry.startswith(p) for p in prefixes)
            }
        )
    )
    work = _WORK.rstrip("/") + "/"
    local = set()
    orig_import = _builtins.__import__
    state = {}

    def caller():
        # The frame that called the wrapper; None when C code calls with no Python frame left
        # (the traceback printer at exit).
        try:
            return _sys._getframe(2)
        except ValueError:
            return None

    def is_user(frame):
        if frame is None:
            return False
        name = frame.f_code.co_filename
        return not (name.startswith("<frozen ") or name.startswith(trusted))

    def position(frame):
        if frame is None:
            return "<command line>", 0, 0
        # Python 3.11+: one position per code unit (2 bytes); older versions give the line only.
        column = 0
        try:
            positions = frame.f_code.co_positions()
            for _ in range(frame.f_lasti // 2):
                next(positions)
            column = (next(positions)[2] or 0) + 1
        except Exception:
            pass
        return frame.f_code.co_filename, frame.f_lineno or 0, column

    def report(kind, name, frame):
        shown = name if name.replace(".", "").replace("_", "").isalnum() else repr(name)[:80]
        file, line, column = position(frame)
        try:
            _os.write(2, f"{_MARK}{kind}: {shown} at {file}:{line}:{column}\n".encode())
        except OSError:
            pass
        return shown

    def is_local(top):
        if top in local:
            return True
        util = _sys.modules.get("importlib.util") or orig_import("importlib.util").util
        try:
            spec = util.find_spec(top)
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
        places = [spec.origin] if spec.origin else []
        places += list(spec.submodule_search_locations or [])
        ok = bool(places) and all(str(p).startswith(work) for p in places)
        if ok:
            local.add(top)
        return ok

    def allowed(name):
        return any(name == a or name.startswith(a + ".") for a in _ALLOWED)

    def check_module(name, frame):
        top = name.partition(".")[0]
        if _ALLOWED is None or allowed(name) or is_local(top):
            return
        shown = report("Blocked import", name, frame)
        raise ImportError(f"Blocked import: {shown}", name=name)

    def blocked(name, frame):
        shown = report("Blocked function", name, frame)
        return PermissionError(f"Blocked function: {shown}")

    def from_statement(frame):
        # An `import` statement reaches __import__ through the IMPORT_NAME instruction; an
        # explicit `__import__("os")` call through a CALL.
        if "op" not in state:
            state["op"] = orig_import("opcode").opmap["IMPORT_NAME"]
        code = frame.f_code.co_code
        return 0 <= frame.f_lasti < len(code) and code[frame.f_lasti] == state["op"]

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        frame = caller()
        # C code importing for itself (PyImport_Import: time.strptime loading _strptime, the
        # traceback printer loading io) passes a list; statements pass None or a tuple.
        if type(fromlist) is list:
            return orig_import(name, globals, locals, fromlist, level)
        if is_user(frame):
            if "__import__" in _BLOCKED and not from_statement(frame):
                raise blocked("__import__", frame)
            if level == 0:
                check_module(name, frame)
        return orig_import(name, globals, locals, fromlist, level)

    _builtins.__import__ = guarded_import

    importlib = orig_import("importlib")
    orig_import_module = importlib.import_module

    def import_module(name, package=None):
        frame = caller()
        if is_user(frame) and not name.startswith("."):
            check_module(name, frame)
        return orig_import_module(name, package)

    importlib.import_module = import_module
    # importlib's own __import__ is the library's, not the guarded builtin.
    importlib.__import__ = guarded_import

    def wrap(name, original):
        def guarded(*args, **kwargs):
            frame = caller()
            if is_user(frame):
                raise blocked(name, frame)
            return original(*args, **kwargs)

        guarded.__name__ = name
        guarded.__qualname__ = name
        guarded.__doc__ = original.__doc__
        return guarded

    for name in _BLOCKED:
        if name != "__import__" and hasattr(_builtins, name):
            setattr(_builtins, name, wrap(name, getattr(_builtins, name)))
        if name == "open":
            orig_import("io").open = _builtins.open

    check_main_module(check_module)


def check_main_module(check_module):
    # `python3 -m NAME` imports NAME through runpy (library code): check NAME here instead.
    argv = getattr(_sys, "orig_argv", [])
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-m"):
            name = arg[2:] or (argv[i + 1] if i + 1 < len(argv) else "")
            try:
                check_module(name, None)
            except ImportError as e:
                _os.write(2, f"{_sys.executable}: {e}\n".encode())
                _os._exit(1)
            return
        if arg in ("-c", "-", "--") or not arg.startswith("-"):
            return
        # Options that take the next argument as their value.
        i += 2 if arg in ("-W", "-X") else 1


try:
    _install()
except BaseException as e:
    # `site` reports an exception here and carries on without the guard; fail closed instead.
    _os.write(2, f"{_MARK}guard failed: {e!r}\n".encode())
    _os._exit(125)
