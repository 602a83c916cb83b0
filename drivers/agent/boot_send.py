"""The pod agent's boot program with the source: ``python3 -S -c BOOT_SEND`` after a cache miss.

stdin: ``<key> <source length>\\n<source><payload JSON>``. The source must hash to the key; it is
compiled, cached for ``boot.py`` (``<state_dir>/agent/``: directory 0700, file 0600 written by
atomic rename; a directory that is not ours or is open to others is not written to) and run.
Cache files of other versions written over a week ago are removed. Standard library only,
Python 3.8 syntax. Everything above the ``# --boot--`` line is left out of what is sent.
"""
# --boot--
import json, marshal, os, sys, time
def _sha(b):
    try:
        from _sha2 import sha256
    except ImportError:
        try:
            from _sha256 import sha256
        except ImportError:
            from hashlib import sha256
    return sha256(b).hexdigest().encode()
def _ours(d):
    try:
        st = os.stat(d)
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & 0o077
def main():
    d = sys.stdin.buffer.read()
    h, _, d = d.partition(b"\n")
    k, n = h.split()
    n = int(n)
    s, p = d[:n], json.loads(d[n:])
    c = os.path.join(os.path.expanduser(p["state_dir"]), "agent")
    f = os.path.join(c, "%s.%s" % (k.decode(), sys.implementation.cache_tag))
    if s:
        if _sha(s) != k:
            sys.stdout.write('{"error": "the agent source does not match its key"}\n')
            sys.exit(2)
        code = compile(s, "gpumod-podside", "exec")
        try:
            os.makedirs(os.path.dirname(c), 0o700, exist_ok=True)
            os.makedirs(c, 0o700, exist_ok=True)
            if _ours(c):
                m = marshal.dumps(code)
                t = "%s.tmp.%d" % (f, os.getpid())
                fd = os.open(t, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as w:
                    w.write(_sha(m) + b"\n" + m)
                os.replace(t, f)
                for old in os.listdir(c):  # other versions, written over a week ago
                    o = os.path.join(c, old)
                    if o != f and os.stat(o).st_mtime < time.time() - 7 * 86400:
                        os.unlink(o)
        except OSError:
            pass  # a read-only pod still runs the agent, just uncached
    else:
        sys.stdout.write('{"error": "no agent source was sent"}\n')
        sys.exit(2)
    del d, s
    exec(code, {"__name__": "__gpumod_agent__", "PAYLOAD": p})
if __name__ == "__main__":
    main()
