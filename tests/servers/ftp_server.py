"""An FTP server for Courier's tests, built on pyftpdlib (Debian's python3-pyftpdlib): its
commands, passive data connections, REST, SIZE, MDTM and (with a certificate) explicit FTPS
(AUTH TLS, PBSZ, PROT P) are the library's.

    python3 ftp_server.py PORT ROOT [CERT KEY]

Anonymous users may read ROOT; the user "ann" (password "pw") may read and write it. With CERT and
KEY, TLS is offered and required for logins and data (TLS_FTPHandler).
"""
import logging
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.log import config_logging
from pyftpdlib.servers import FTPServer

# Every command and reply in the log (stderr), for the tests to read.
config_logging(level=logging.DEBUG)
port, root = int(sys.argv[1]), sys.argv[2]
authorizer = DummyAuthorizer()
authorizer.add_user("ann", "pw", root, perm="elradfmwMT")
authorizer.add_anonymous(root)
if len(sys.argv) > 4:
    from pyftpdlib.handlers import TLS_FTPHandler as Handler

    Handler.certfile = sys.argv[3]
    Handler.keyfile = sys.argv[4]
    Handler.tls_control_required = True
    Handler.tls_data_required = True
else:
    from pyftpdlib.handlers import FTPHandler as Handler
Handler.authorizer = authorizer
Handler.passive_ports = None
server = FTPServer(("127.0.0.1", port), Handler)
server.serve_forever()
