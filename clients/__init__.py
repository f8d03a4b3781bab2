"""Tools for the clients published outside the app: the JavaScript package in `clients/js/`."""
