"""com.yahoo.ml.caffe.GeneralUtil: CaffeOnSpark's small string helpers and
deleteFile."""
import os
import shutil
import subprocess


def toCamelCase(prefix, string):
    """prefix + string with its first letter upper-cased ("get", "maxIter" -> "getMaxIter")."""
    return prefix + string[:1].upper() + string[1:]


def isPrefix(prefix, string):
    return string.startswith(prefix)


def isSuffix(suffix, string):
    return string.endswith(suffix)


def unCamelCase(prefixLength, string):
    """string without its first prefixLength characters, the next one
    lower-cased ("getMaxIter", 3 -> "maxIter")."""
    rest = string[prefixLength:]
    return rest[:1].lower() + rest[1:]


def getTrailingNumber(string):
    """The number the string ends with (0 when it ends with no digit)."""
    i = len(string)
    while i > 0 and string[i - 1].isdigit():
        i -= 1
    return int(string[i:]) if i < len(string) else 0


def deleteFile(path, isHadoop=False):
    """Removes a file or directory tree; isHadoop: through `hadoop fs -rm -r`."""
    if isHadoop:
        subprocess.run(["hadoop", "fs", "-rm", "-r", path], check=False)
    elif os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)
