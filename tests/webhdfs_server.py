#!/usr/bin/env python3
"""A WebHDFS-protocol server on 127.0.0.1 over a local directory, for tests:
Hadoop's own WebHdfsFileSystem client (and crema.spark's WebHDFS client)
talk to it as to a NameNode and DataNode. No HDFS NameNode can run here
(Hadoop's server jars are not in any registry the machines reach).

Operations: GETFILESTATUS, LISTSTATUS, GETHOMEDIRECTORY, GETFILECHECKSUM
(404), OPEN (a redirect to the "datanode", honouring offset and length),
CREATE (the two-step redirect; the data may come chunked), APPEND, MKDIRS,
RENAME (with renameoptions=OVERWRITE), DELETE, SETPERMISSION, SETTIMES and
SETOWNER (accepted: this stand-in keeps no owners or permissions). Errors
are RemoteException JSON with the status codes HDFS uses.

What it does not exercise of HDFS: the RPC protocol (hdfs:// without
WebHdfsFileSystem), Kerberos and delegation tokens, blocks and replication,
leases and concurrent writers, permissions.

Every write (CREATE's data, APPEND, RENAME, DELETE, MKDIRS) and read (OPEN) is logged as a
JSON line to --log with the client's process id and program (a JVM's main class), found
through /proc (client and server share the machine), so a test can tell
which process wrote a file.

    python3 tests/webhdfs_server.py --root DIR --port-file FILE [--log FILE]
"""
import argparse
import json
import os
import shutil
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/webhdfs/v1"


def main_of(args):
    """A process by its program, and for a JVM its main class (the first
    argument that is not an option or an option's value)."""
    args = [a for a in args if a]
    if not args:
        return ""
    if os.path.basename(args[0]) != "java":
        return " ".join(args)[:300]
    i = 1
    while i < len(args):
        a = args[i]
        if a in ("-cp", "-classpath", "--class-path", "-jar"):
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return "java " + a
    return "java"


def client_process(client_port, server_port):
    """The pid and command line of the process owning the client end of a
    TCP connection on 127.0.0.1 (None when it cannot be told)."""
    def endpoint(field):
        addr, port = field.split(":")
        return addr.upper(), int(port, 16)

    inode = None
    # a JVM's sockets are dual-stack: its end shows in tcp6 as ::ffff:127.0.0.1
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    (laddr, lport), (raddr, rport) = endpoint(parts[1]), endpoint(parts[2])
                    if (lport == client_port and rport == server_port and laddr.endswith("0100007F")
                            and raddr.endswith("0100007F")):
                        inode = parts[9]
                        break
        except OSError:
            continue
        if inode:
            break
    if not inode or inode == "0":
        return None, None
    target = "socket:[%s]" % inode
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = "/proc/%s/fd" % pid
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(os.path.join(fd_dir, fd)) == target:
                        with open("/proc/%s/cmdline" % pid, "rb") as f:
                            args = f.read().decode("utf-8", "replace").split("\0")
                        return int(pid), main_of(args)
                except OSError:
                    continue
        except OSError:
            continue
    return None, None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "crema-webhdfs-test/1"

    def log_message(self, fmt, *args):  # quiet: the write log is what tests read
        pass

    # ---- helpers ----

    def _local(self, hdfs_path):
        norm = os.path.normpath("/" + hdfs_path.lstrip("/"))
        return os.path.join(self.server.root, norm.lstrip("/")), norm

    def _send(self, code, body=b"", ctype="application/json", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _json(self, code, obj, headers=()):
        self._send(code, json.dumps(obj).encode(), headers=headers)

    def _error(self, code, exc, java, msg):
        self._json(code, {"RemoteException": {"exception": exc, "javaClassName": java, "message": msg}})

    def _not_found(self, path):
        self._error(404, "FileNotFoundException", "java.io.FileNotFoundException", "File does not exist: " + path)

    def _status(self, local, name):
        st = os.stat(local)
        is_dir = os.path.isdir(local)
        return {"accessTime": int(st.st_atime * 1000), "blockSize": 134217728, "childrenNum": 0,
                "fileId": st.st_ino, "group": "supergroup", "length": 0 if is_dir else st.st_size,
                "modificationTime": int(st.st_mtime * 1000), "owner": self.server.owner, "pathSuffix": name,
                "permission": "755" if is_dir else "644", "replication": 0 if is_dir else 1,
                "storagePolicy": 0, "type": "DIRECTORY" if is_dir else "FILE"}

    def _record(self, op, path, **extra):
        if not self.server.log_path:
            return
        pid, cmd = client_process(self.client_address[1], self.server.server_address[1])
        rec = {"time": time.time(), "op": op, "path": path, "pid": pid, "process": cmd}
        rec.update(extra)
        with self.server.log_lock:
            with open(self.server.log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def _body(self):
        """The request body: Content-Length or chunked. Returns (bytes, complete)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                line = self.rfile.readline()
                if not line:
                    return bytes(out), False
                try:
                    n = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    return bytes(out), False
                if n == 0:
                    while True:  # trailers
                        t = self.rfile.readline()
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    return bytes(out), True
                chunk = self.rfile.read(n)
                out += chunk
                if len(chunk) < n:
                    return bytes(out), False
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0") or 0)
        data = self.rfile.read(n) if n else b""
        return data, len(data) == n

    def _parse(self):
        url = urllib.parse.urlsplit(self.path)
        if not url.path.startswith(PREFIX):
            self._error(400, "IllegalArgumentException", "java.lang.IllegalArgumentException",
                        "not a WebHDFS path: " + url.path)
            return None
        q = {k.lower() if k.lower() != "op" else "op": v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        return urllib.parse.unquote(url.path[len(PREFIX):]) or "/", q

    def _redirect(self, q, path):
        """The NameNode's answer to OPEN/CREATE/APPEND: the DataNode's URL."""
        args = dict(q)
        args["datanode"] = "true"
        loc = "http://127.0.0.1:%d%s%s?%s" % (self.server.server_address[1], PREFIX, urllib.parse.quote(path),
                                            urllib.parse.urlencode(args))
        if q.get("noredirect") == "true":
            self._json(200, {"Location": loc})
        else:
            self._send(307, headers=[("Location", loc)])

    # ---- verbs ----

    def do_GET(self):
        parsed = self._parse()
        if parsed is None:
            return
        path, q = parsed
        op = q.get("op", "").upper()
        local, norm = self._local(path)
        if op == "GETFILESTATUS":
            if not os.path.exists(local):
                return self._not_found(norm)
            return self._json(200, {"FileStatus": self._status(local, "")})
        if op == "LISTSTATUS":
            if not os.path.exists(local):
                return self._not_found(norm)
            if os.path.isdir(local):
                items = [self._status(os.path.join(local, n), n) for n in sorted(os.listdir(local))]
            else:
                items = [self._status(local, "")]
            return self._json(200, {"FileStatuses": {"FileStatus": items}})
        if op == "GETHOMEDIRECTORY":
            return self._json(200, {"Path": "/user/" + q.get("user.name", self.server.owner)})
        if op == "OPEN":
            if not os.path.isfile(local):
                return self._not_found(norm)
            if q.get("datanode") != "true":
                return self._redirect(q, norm)
            off = int(q.get("offset", "0") or 0)
            length = q.get("length")
            with open(local, "rb") as f:
                f.seek(off)
                data = f.read(int(length)) if length else f.read()
            self._record("OPEN", norm, bytes=len(data))
            return self._send(200, data, "application/octet-stream")
        if op == "GETFILECHECKSUM":
            return self._error(404, "FileNotFoundException", "java.io.FileNotFoundException",
                               "GETFILECHECKSUM is not kept by this test server")
        return self._error(400, "IllegalArgumentException", "java.lang.IllegalArgumentException",
                           "Invalid value for webhdfs parameter \"op\": " + op)

    def do_PUT(self):
        parsed = self._parse()
        if parsed is None:
            return
        path, q = parsed
        op = q.get("op", "").upper()
        local, norm = self._local(path)
        if op == "CREATE":
            if q.get("datanode") != "true":
                # the NameNode step carries no data
                self._body()
                if os.path.isdir(local):
                    return self._error(403, "FileAlreadyExistsException",
                                       "org.apache.hadoop.fs.FileAlreadyExistsException", norm + " is a directory")
                if os.path.exists(local) and q.get("overwrite", "false") != "true":
                    return self._error(403, "FileAlreadyExistsException",
                                       "org.apache.hadoop.fs.FileAlreadyExistsException", norm + " already exists")
                return self._redirect(q, norm)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            # bytes land as they arrive, as a DataNode's do: a writer killed
            # mid-body leaves a partial file under its (temporary) name
            with open(local, "wb") as f:
                data, complete = self._body()
                f.write(data)
            self._record("CREATE", norm, bytes=len(data), complete=complete)
            if not complete:
                self.close_connection = True
                return
            return self._send(201, headers=[("Location", "hdfs://127.0.0.1:%d%s" % (self.server.server_address[1], norm))])
        if op == "MKDIRS":
            self._body()
            if os.path.isfile(local):
                return self._error(403, "FileAlreadyExistsException",
                                   "org.apache.hadoop.fs.FileAlreadyExistsException", norm + " is a file")
            os.makedirs(local, exist_ok=True)
            self._record("MKDIRS", norm)
            return self._json(200, {"boolean": True})
        if op == "RENAME":
            self._body()
            dst = q.get("destination", "")
            dlocal, dnorm = self._local(dst)
            overwrite = "OVERWRITE" in q.get("renameoptions", "").upper()
            if not os.path.exists(local) or not dst:
                ok = False
            elif os.path.isdir(dlocal) and not overwrite:
                target = os.path.join(dlocal, os.path.basename(local))
                ok = not os.path.exists(target)
                if ok:
                    os.rename(local, target)
            elif os.path.exists(dlocal) and not overwrite:
                ok = False
            else:
                os.makedirs(os.path.dirname(dlocal), exist_ok=True)
                os.replace(local, dlocal)
                ok = True
            self._record("RENAME", norm, destination=dnorm, ok=ok)
            return self._json(200, {"boolean": ok})
        if op in ("SETPERMISSION", "SETOWNER", "SETTIMES", "SETREPLICATION"):
            self._body()
            if not os.path.exists(local):
                return self._not_found(norm)
            return self._send(200) if op != "SETREPLICATION" else self._json(200, {"boolean": True})
        self._body()
        return self._error(400, "IllegalArgumentException", "java.lang.IllegalArgumentException",
                           "Invalid value for webhdfs parameter \"op\": " + op)

    def do_POST(self):
        parsed = self._parse()
        if parsed is None:
            return
        path, q = parsed
        op = q.get("op", "").upper()
        local, norm = self._local(path)
        if op == "APPEND":
            if not os.path.isfile(local):
                self._body()
                return self._not_found(norm)
            if q.get("datanode") != "true":
                self._body()
                return self._redirect(q, norm)
            with open(local, "ab") as f:
                data, complete = self._body()
                f.write(data)
            self._record("APPEND", norm, bytes=len(data), complete=complete)
            return self._send(200)
        self._body()
        return self._error(400, "IllegalArgumentException", "java.lang.IllegalArgumentException",
                           "Invalid value for webhdfs parameter \"op\": " + op)

    def do_DELETE(self):
        parsed = self._parse()
        if parsed is None:
            return
        path, q = parsed
        self._body()
        local, norm = self._local(path)
        if q.get("op", "").upper() != "DELETE":
            return self._error(400, "IllegalArgumentException", "java.lang.IllegalArgumentException",
                               "Invalid value for webhdfs parameter \"op\": " + q.get("op", ""))
        if norm == "/":
            return self._json(200, {"boolean": False})
        ok = True
        if not os.path.exists(local):
            ok = False
        elif os.path.isdir(local):
            if os.listdir(local) and q.get("recursive", "false") != "true":
                return self._error(403, "PathIsNotEmptyDirectoryException",
                                   "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException", norm + " is non empty")
            shutil.rmtree(local)
        else:
            os.unlink(local)
        self._record("DELETE", norm, ok=ok)
        return self._json(200, {"boolean": ok})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    a = ap.parse_args()
    os.makedirs(a.root, exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.root = os.path.abspath(a.root)
    srv.owner = os.environ.get("USER", "root")
    srv.log_path = a.log
    srv.log_lock = threading.Lock()
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, a.port_file)
    sys.stdout.write("webhdfs on 127.0.0.1:%d over %s\n" % (port, srv.root))
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
