"""Audio in and out: the decode protocol and detector views, encoding, transforms, source
separation, and the decode worker pool."""
