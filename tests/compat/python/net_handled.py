# Code that tries the network and handles the failure: it must get an error it can catch, never a
# kill. Only loopback is addressed (a closed port), so the bare run sends nothing off the host.
import socket
import urllib.error
import urllib.request
import uuid

try:
    urllib.request.urlopen("http://127.0.0.1:1/", timeout=5)
    print("urlopen=succeeded")
except urllib.error.URLError:
    print("urlopen=URLError caught")

try:
    socket.create_connection(("127.0.0.1", 1), timeout=5)
    print("connect=succeeded")
except OSError:
    print("connect=OSError caught")

print("uuid1_version=%d" % uuid.uuid1().version)
print("uuid4_version=%d" % uuid.uuid4().version)
print("localhost_resolves=%s" % bool(socket.getaddrinfo("localhost", 80)))
print("gethostname_str=%s" % isinstance(socket.gethostname(), str))
