#!/usr/bin/env python3
"""Check the dependency rule of lib/ (docs/DEVELOPING.md, "Layout").

Each folder of lib/ may depend only on the folders listed for it in ALLOWED.
A dependency is either
  - an #include "..." of a header that lives in another folder, or
  - a use of a function (sg_* or sigma_*) whose definition is in another
    folder's .c file (a function declared in one folder's header but
    defined in another's file is a dependency on the definer).
Also checked: every sg_* function declared in a folder's header is defined
in that folder, every folder's first header opens with "<folder>: <job>",
and no folder is missing from ALLOWED.

Usage: check_layering.py [LIBDIR]        exit 0 when the rule holds
       check_layering.py --self-test     shows that violations are caught
"""
import os
import re
import shutil
import sys
import tempfile

# The rule. Order of the list = the order of the layers, lowest first.
# forward and kv meet only through the public sigma_kv_strategy table, so
# neither lists the other; text never sees kv, forward, session or api.
ALLOWED = {
    "base": [],
    "core": ["base"],
    "model": ["base", "core"],
    "text": ["base", "core", "model"],
    "kv": ["base", "core"],
    "forward": ["base", "core", "model"],
    "session": ["base", "core", "model", "text", "kv", "forward"],
    "api": ["base", "core", "model", "text", "kv", "forward", "session"],
}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# A function definition at column 0: return type, name, parameters, body.
DEF_RE = re.compile(
    r'^(?!static\b|typedef\b|#|\s)([A-Za-z_][^;{}()=]*?)\b((?:sg|sigma)_\w+)\s*\(([^;{}]*?)\)\s*\{',
    re.M | re.S)
DECL_RE = re.compile(
    r'^(?!static\b|typedef\b|#|\s)[A-Za-z_][^;{}()=]*?\b(sg_\w+)\s*\([^;{}]*?\)\s*(?:SG_\w+\([^)]*\)\s*)?;',
    re.M | re.S)
USE_RE = re.compile(r'\b((?:sg|sigma)_\w+)\s*\(')
COMMENT_RE = re.compile(r'/\*.*?\*/|//[^\n]*', re.S)
STRING_RE = re.compile(r'"(?:\\.|[^"\\\n])*"')


def strip(text):
    text = COMMENT_RE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return STRING_RE.sub('""', text)


def sources(libdir):
    for folder in sorted(os.listdir(libdir)):
        d = os.path.join(libdir, folder)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith((".c", ".h")):
                yield folder, os.path.join(d, name)


def check(libdir):
    errors = []
    folders = sorted(f for f in os.listdir(libdir) if os.path.isdir(os.path.join(libdir, f)))
    for f in folders:
        if f not in ALLOWED:
            errors.append(f"lib/{f}/: folder not in the layering rule (tools/ci/check_layering.py)")
    files = list(sources(libdir))
    text = {}
    for folder, path in files:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text[path] = fh.read()

    def rel(path):
        return os.path.relpath(path, os.path.dirname(libdir))

    # 1. includes
    for folder, path in files:
        for m in INCLUDE_RE.finditer(text[path]):
            target = os.path.normpath(os.path.join(os.path.dirname(path), m.group(1)))
            if not target.startswith(os.path.normpath(libdir) + os.sep):
                continue  # public header or system-like include
            tfolder = os.path.relpath(target, libdir).split(os.sep)[0]
            if tfolder != folder and tfolder not in ALLOWED.get(folder, []):
                line = text[path].count("\n", 0, m.start()) + 1
                errors.append(f"{rel(path)}:{line}: includes {m.group(1)}: "
                              f"'{folder}' may not depend on '{tfolder}'")

    # 2. where every non-static function is defined
    defined = {}
    for folder, path in files:
        if not path.endswith(".c"):
            continue
        for m in DEF_RE.finditer(strip(text[path])):
            defined.setdefault(m.group(2), (folder, path))

    # 3. declarations in a folder's headers are defined in that folder
    for folder, path in files:
        if not path.endswith(".h"):
            continue
        for m in DECL_RE.finditer(strip(text[path])):
            name = m.group(1)
            if name in defined and defined[name][0] != folder:
                errors.append(f"{rel(path)}: declares {name}, defined in "
                              f"{rel(defined[name][1])} (another folder)")

    # 4. calls: using a function defined in another folder is a dependency
    for folder, path in files:
        body = strip(text[path])
        seen = set()
        for m in USE_RE.finditer(body):
            name = m.group(1)
            if name in seen or name not in defined:
                continue
            seen.add(name)
            dfolder = defined[name][0]
            if dfolder != folder and dfolder not in ALLOWED.get(folder, []):
                line = body.count("\n", 0, m.start()) + 1
                errors.append(f"{rel(path)}:{line}: calls {name} (defined in "
                              f"{rel(defined[name][1])}): '{folder}' may not depend on '{dfolder}'")

    # 5. each folder states its job on the first line of its internal header
    for f in folders:
        hdrs = sorted(n for n in os.listdir(os.path.join(libdir, f)) if n.endswith(".h"))
        if not hdrs:
            continue
        main = f + ".h" if f + ".h" in hdrs else hdrs[0]
        with open(os.path.join(libdir, f, main), encoding="utf-8") as fh:
            first = fh.readline()
        if not first.startswith(f"/* {f}: "):
            errors.append(f"lib/{f}/{main}:1: must open with '/* {f}: <the folder's one job>'")
    return errors


def self_test(libdir):
    """Copy lib/, break the rule in each way the check knows, expect failures."""
    ok = True
    cases = [
        ("include", "text", "chat.c", '#include "../session/session.h"\n'),
        ("include", "kv", "registry.c", '#include "../forward/forward.h"\n'),
        ("call", "text", "chat.c",
         "void sg_layering_probe(void);\nvoid sg_layering_probe(void) { sigma_session_eval(0, 0, 0); }\n"),
        ("call", "model", "model.c",
         "void sg_layering_probe2(void);\nvoid sg_layering_probe2(void) { sg_tokenizer_free(0); }\n"),
    ]
    if check(libdir):
        print("self-test: the tree itself does not pass")
        return False
    for kind, folder, name, snippet in cases:
        tmp = tempfile.mkdtemp()
        try:
            copy = os.path.join(tmp, "lib")
            shutil.copytree(libdir, copy)
            with open(os.path.join(copy, folder, name), "a", encoding="utf-8") as fh:
                fh.write(snippet)
            errs = check(copy)
            if errs:
                print(f"self-test: forbidden {kind} in lib/{folder}/{name} caught: {errs[0]}")
            else:
                print(f"self-test: forbidden {kind} in lib/{folder}/{name} NOT caught")
                ok = False
        finally:
            shutil.rmtree(tmp)
    return ok


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.normpath(os.path.join(here, "..", "..", "lib"))
    args = sys.argv[1:]
    if args and args[0] == "--self-test":
        libdir = args[1] if len(args) > 1 else default
        sys.exit(0 if self_test(libdir) else 1)
    libdir = args[0] if args else default
    errors = check(libdir)
    for e in errors:
        print(e)
    if errors:
        print(f"layering: {len(errors)} violation(s) of the rule in docs/DEVELOPING.md")
        sys.exit(1)
    print("layering: ok")


if __name__ == "__main__":
    main()
