"""Hadoop URIs from Python tasks: the process that needs a file reads or
writes it itself, so rank 0's task writes the model and every snapshot, and
ranks read weights, snapshots and LMDB sources, with no driver in between.

file: URIs and plain paths are the local file system. hdfs://, webhdfs://
and swebhdfs:// go through WebHDFS's REST API (http.client, no extra
package), or through pyarrow's HadoopFileSystem when
spark.crema.hdfs.client=libhdfs and libhdfs is present. Where an hdfs://
NameNode serves WebHDFS is read, on the driver, from the application's
Hadoop configuration: the NameNode itself when fs.hdfs.impl is Hadoop's
WebHdfsFileSystem (as in crema's tests), else dfs.namenode.http-address,
else port 9870 of the NameNode's host; spark.crema.webhdfs overrides it.

Files are written to a temporary name beside the target and renamed, so a
kill mid-write leaves the previous file whole."""
import glob
import hashlib
import http.client
import json
import os
import re
import shutil
import urllib.parse
import uuid

WEBHDFS_FS = "org.apache.hadoop.hdfs.web.WebHdfsFileSystem"


def is_remote(uri):
    return bool(uri) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", uri) is not None and not uri.startswith("file:")


def parent(uri):
    u = uri.rstrip("/")
    i = u.rfind("/")
    head = u[:i]
    return head + "/" if head.endswith(":/") or head.endswith(":") else head


def child(d, name):
    return d + name if d.endswith("/") else d + "/" + name


def basename(uri):
    return uri.rstrip("/").rsplit("/", 1)[-1]


class HdfsError(IOError):
    pass


class Store:
    """How to reach one Hadoop file system (picklable: it travels in task
    closures). kind "webhdfs": base URL and user; "libhdfs": host, port, user."""

    def __init__(self, kind, scheme_host, base=None, user=None, host=None, port=None):
        self.kind = kind
        self.scheme_host = scheme_host  # "hdfs://nn:8020": the part of the URI this store serves
        self.base = base
        self.user = user
        self.host = host
        self.port = port
        self._fs = None

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_fs"] = None
        return d

    # ---- paths ----

    def path(self, uri):
        p = urllib.parse.urlsplit(uri).path
        return p if p else "/"

    # ---- WebHDFS ----

    def _conn(self, url):
        u = urllib.parse.urlsplit(url)
        cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        return cls(u.hostname, u.port or (443 if u.scheme == "https" else 80), timeout=120), u

    def _request(self, method, url, body=None, length=None):
        conn, u = self._conn(url)
        try:
            target = u.path + ("?" + u.query if u.query else "")
            headers = {}
            if body is not None:
                headers["Content-Type"] = "application/octet-stream"
                headers["Content-Length"] = str(length)
            conn.request(method, target, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            return r.status, r.getheader("Location"), data
        except OSError as e:
            raise HdfsError("%s %s: %s" % (method, url.split("?")[0], e)) from None
        finally:
            conn.close()

    def _url(self, uri, op, **params):
        q = {"op": op}
        if self.user:
            q["user.name"] = self.user
        q.update({k: v for k, v in params.items() if v is not None})
        return "%s/webhdfs/v1%s?%s" % (self.base.rstrip("/"), urllib.parse.quote(self.path(uri)),
                                       urllib.parse.urlencode(q))

    def _call(self, method, uri, op, ok=(200,), **params):
        status, loc, data = self._request(method, self._url(uri, op, **params))
        if status not in ok:
            raise HdfsError(self._explain(uri, op, status, data))
        return status, loc, data

    @staticmethod
    def _explain(uri, op, status, data):
        try:
            e = json.loads(data.decode("utf-8"))["RemoteException"]
            return "%s: %s: %s (%s)" % (uri, op, e.get("message"), e.get("exception"))
        except (ValueError, KeyError, TypeError):
            return "%s: %s: HTTP %d" % (uri, op, status)

    def _arrow(self):
        if self._fs is None:
            from pyarrow import fs as pafs
            self._fs = pafs.HadoopFileSystem(self.host, self.port, user=self.user)
        return self._fs

    # ---- operations ----

    def status(self, uri):
        """FileStatus as a dict (type, length), or None when it does not exist."""
        if self.kind == "libhdfs":
            from pyarrow import fs as pafs
            info = self._arrow().get_file_info(self.path(uri))
            if info.type == pafs.FileType.NotFound:
                return None
            return {"type": "DIRECTORY" if info.type == pafs.FileType.Directory else "FILE", "length": info.size or 0}
        status, _, data = self._call("GET", uri, "GETFILESTATUS", ok=(200, 404))
        if status == 404:
            return None
        return json.loads(data.decode("utf-8"))["FileStatus"]

    def exists(self, uri):
        return self.status(uri) is not None

    def list(self, uri):
        """[(name, length)] of the files in a directory ([] when it does not exist)."""
        if self.kind == "libhdfs":
            from pyarrow import fs as pafs
            if not self.exists(uri):
                return []
            infos = self._arrow().get_file_info(pafs.FileSelector(self.path(uri)))
            return [(i.base_name, i.size) for i in infos if i.type == pafs.FileType.File]
        status, _, data = self._call("GET", uri, "LISTSTATUS", ok=(200, 404))
        if status == 404:
            return []
        items = json.loads(data.decode("utf-8"))["FileStatuses"]["FileStatus"]
        return [(i["pathSuffix"], i["length"]) for i in items if i["type"] == "FILE"]

    def mkdirs(self, uri):
        if self.kind == "libhdfs":
            self._arrow().create_dir(self.path(uri), recursive=True)
            return
        _, _, data = self._call("PUT", uri, "MKDIRS")
        if not json.loads(data.decode("utf-8")).get("boolean"):
            raise HdfsError("%s: cannot create the directory" % uri)

    def delete(self, uri):
        if self.kind == "libhdfs":
            try:
                self._arrow().delete_file(self.path(uri))
            except FileNotFoundError:
                pass
            return
        self._call("DELETE", uri, "DELETE", recursive="false")

    def rename(self, src, dst):
        if self.kind == "libhdfs":
            self._arrow().move(self.path(src), self.path(dst))
            return
        _, _, data = self._call("PUT", src, "RENAME", destination=self.path(dst))
        if not json.loads(data.decode("utf-8")).get("boolean"):
            raise HdfsError("cannot rename %s to %s" % (src, dst))

    def get(self, uri, local):
        """Copies uri to the local file `local` (through a temporary name)."""
        tmp = "%s.crema-tmp-%s" % (local, uuid.uuid4().hex[:8])
        try:
            if self.kind == "libhdfs":
                with self._arrow().open_input_stream(self.path(uri)) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            else:
                status, loc, data = self._call("GET", uri, "OPEN", ok=(200, 307))
                if status == 307:
                    conn, u = self._conn(loc)
                    try:
                        conn.request("GET", u.path + ("?" + u.query if u.query else ""))
                        r = conn.getresponse()
                        if r.status != 200:
                            raise HdfsError(self._explain(uri, "OPEN", r.status, r.read()))
                        with open(tmp, "wb") as dst:
                            shutil.copyfileobj(r, dst, 1 << 20)
                    except OSError as e:
                        raise HdfsError("OPEN %s: %s" % (uri, e)) from None
                    finally:
                        conn.close()
                else:
                    with open(tmp, "wb") as dst:
                        dst.write(data)
            os.replace(tmp, local)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def put(self, local, uri):
        """Copies the local file to uri: to a temporary name, then renamed."""
        tmp = child(parent(uri), ".%s.crema-tmp-%s" % (basename(uri), uuid.uuid4().hex[:8]))
        size = os.path.getsize(local)
        try:
            if self.kind == "libhdfs":
                with open(local, "rb") as src, self._arrow().open_output_stream(self.path(tmp)) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            else:
                # CREATE: the NameNode answers with the DataNode to send the data to
                _, loc, _ = self._call("PUT", tmp, "CREATE", ok=(307,), overwrite="true")
                if not loc:
                    raise HdfsError("%s: CREATE gave no DataNode location" % uri)
                with open(local, "rb") as src:
                    status, _, data = self._request("PUT", loc, body=src, length=size)
                if status not in (200, 201):
                    raise HdfsError(self._explain(uri, "CREATE", status, data))
            if self.exists(uri):
                self.delete(uri)
            self.rename(tmp, uri)
        finally:
            try:
                if self.exists(tmp):
                    self.delete(tmp)
            except HdfsError:
                pass


def store_for(sc, uri):
    """The Store for a remote URI, resolved on the driver from the Spark
    application's Hadoop configuration; None for file: URIs and paths."""
    if not is_remote(uri):
        return None
    u = urllib.parse.urlsplit(uri)
    scheme, host, port = u.scheme.lower(), u.hostname, u.port
    conf = sc.getConf()
    hconf = sc._jsc.hadoopConfiguration()
    user = sc.sparkUser()
    scheme_host = "%s://%s" % (scheme, u.netloc)
    if scheme == "hdfs" and conf.get("spark.crema.hdfs.client", "webhdfs") == "libhdfs":
        return Store("libhdfs", scheme_host, user=user, host=host, port=port or 8020)
    explicit = conf.get("spark.crema.webhdfs", None)
    if explicit:
        return Store("webhdfs", scheme_host, base=explicit, user=user)
    if scheme in ("webhdfs", "swebhdfs"):
        default = 9870 if scheme == "webhdfs" else 9871
        return Store("webhdfs", scheme_host, base="%s://%s:%d" % ("https" if scheme == "swebhdfs" else "http", host,
                                                                  port or default), user=user)
    if scheme == "hdfs":
        impl = hconf.get("fs.hdfs.impl") or ""
        if impl == WEBHDFS_FS:
            return Store("webhdfs", scheme_host, base="http://%s:%d" % (host, port or 9870), user=user)
        http_address = hconf.get("dfs.namenode.http-address")
        if http_address and not http_address.startswith("0.0.0.0"):
            return Store("webhdfs", scheme_host, base="http://" + http_address, user=user)
        return Store("webhdfs", scheme_host, base="http://%s:9870" % host, user=user)
    raise ValueError("%s: crema.spark's Python tasks read and write file:, hdfs:, webhdfs: and swebhdfs: URIs "
                     "(not %s:)" % (uri, scheme))


# ---- what the tasks do with it ----

def fetch(store, uri, cache_dir):
    """uri as a local file: itself when local, else copied once into
    cache_dir (keyed by the file's URI and length)."""
    if store is None:
        p = uri[len("file:"):] if uri.startswith("file:") else uri
        p = p[2:] if p.startswith("//") else p
        return os.path.abspath(p)
    st = store.status(uri)
    if st is None or st.get("type") != "FILE":
        raise HdfsError("%s: no such file" % uri)
    key = hashlib.sha256(("%s\0%s" % (uri, st.get("length"))).encode()).hexdigest()[:20]
    d = os.path.join(cache_dir, key)
    os.makedirs(d, exist_ok=True)
    local = os.path.join(d, basename(uri))
    if not os.path.exists(local) or os.path.getsize(local) != st.get("length"):
        store.get(uri, local)
    return local


def fetch_dir(store, uri, cache_dir):
    """A directory (an LMDB) as a local directory, copied first when
    remote, as CaffeOnSpark copied LMDBs to each executor."""
    if store is None:
        return fetch(None, uri, cache_dir)
    files = sorted(store.list(uri))
    if not files:
        raise HdfsError("%s: no such directory, or no files in it" % uri)
    key = hashlib.sha256(("%s\0%s" % (uri, files)).encode()).hexdigest()[:20]
    d = os.path.join(cache_dir, key, basename(uri))
    os.makedirs(d, exist_ok=True)
    for name, length in files:
        local = os.path.join(d, name)
        if not os.path.exists(local) or os.path.getsize(local) != length:
            store.get(child(uri, name), local)
    return d


def newest_snapshot(store, prefix_uri):
    """(state, model, iteration) of the newest snapshot under prefix_uri
    whose state and model are both whole; (None, None, -1) when none."""
    d, base = parent(prefix_uri), basename(prefix_uri)
    if store is None:
        names = {os.path.basename(p) for p in glob.glob(glob.escape(fetch(None, prefix_uri, "")) + "_iter_*")}
    else:
        names = {n for n, _ in store.list(d)}
    best = (None, None, -1)
    for n in names:
        m = re.match(re.escape(base) + r"_iter_(\d+)\.solverstate(\.h5)?$", n)
        if not m:
            continue
        model = "%s_iter_%s.caffemodel%s" % (base, m.group(1), m.group(2) or "")
        if model in names and int(m.group(1)) > best[2]:
            best = (child(d, n), child(d, model), int(m.group(1)))
    return best


class Uploads:
    """Rank 0's copies of snapshots, one at a time on a thread of their own,
    so that training goes on (and no rank waits on rank 0 past its timeout)."""

    def __init__(self):
        self.thread = None
        self.error = None

    def start(self, fn):
        import threading

        def run():
            try:
                fn()
            except Exception as e:  # reported by finish()
                self.error = e
        self.thread = threading.Thread(target=run, name="crema-snapshot-upload", daemon=True)
        self.thread.start()

    def finish(self):
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            e, self.error = self.error, None
            raise HdfsError("copying a snapshot: %s" % e)


def upload_snapshot(store, solver, work, prefix_uri, it, h5, uploads):
    """Rank 0's snapshot: written locally by crema, then the model and then
    the state copied beside -model (behind the training), so a state there
    always has its model."""
    uploads.finish()
    local_prefix = os.path.join(work, "snapshots", basename(prefix_uri))
    os.makedirs(os.path.dirname(local_prefix), exist_ok=True)
    solver.snapshot_to(local_prefix)
    ext = ".h5" if h5 else ""
    d = parent(prefix_uri)

    def copy():
        for kind in ("caffemodel", "solverstate"):
            local = "%s_iter_%d.%s%s" % (local_prefix, it, kind, ext)
            store.put(local, child(d, os.path.basename(local)))
            os.unlink(local)
    uploads.start(copy)
