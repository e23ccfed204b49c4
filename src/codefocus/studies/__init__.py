"""Studies: models x tasks x methods, stored as they finish, resumable, local or on Ray."""
