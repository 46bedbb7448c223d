"""One converter per source framework, each exposing `convert(fmt, path, *, kind, signature)`."""
