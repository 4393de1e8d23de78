"""The daemon: profiles' renewals, custody of the credentials file, the control socket."""
