"""The ``ESI_*`` environment variables esi-cli reads and the webhook sets in the containers it injects.

One list for both programs: a renamed variable changes here, and both sides follow.
"""

SERVER = "ESI_SERVER"
TOKEN_FILE = "ESI_TOKEN_FILE"  # noqa: S105 - a variable's name, not a secret
CA_FILE = "ESI_CA_FILE"
SERVER_CA_FILE = "ESI_SERVER_CA_FILE"
SERVER_CA = "ESI_SERVER_CA"
CLUSTER = "ESI_CLUSTER"
STORE = "ESI_STORE"
ENV = "ESI_ENV"
FILES = "ESI_FILES"
DIR = "ESI_DIR"
FILE_MODE = "ESI_FILE_MODE"
TIMEOUT = "ESI_TIMEOUT"
REFRESH_INTERVAL = "ESI_REFRESH_INTERVAL"
BIN_DIR = "ESI_BIN_DIR"
