"""What both servers (``esi-federation serve``, ``esi-webhook serve``) share in front of their Flask app."""
