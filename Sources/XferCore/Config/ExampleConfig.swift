/// The commented example printed by `ipfs-xfer config --example` and shipped as
/// `contrib/ipfs-xfer.conf` (a test keeps the two identical).
public enum ExampleConfig {
    public static let text = """
    # /etc/ipfs-xfer.conf: ipfs-xfer, pacman's downloader over IPFS.
    #
    # pacman.conf:
    #   XferCommand = /usr/bin/ipfs-xfer %u %o
    # or, with another config file:
    #   XferCommand = /usr/bin/ipfs-xfer --config /path/to/ipfs-xfer.conf %u %o
    #
    # Durations take s, ms or m (1.5s, 250ms); a bare number is seconds.

    [options]
    # The IPFS path of the mirror: /ipfs/<cid>, /ipns/<name> (k51…, 12D3Koo…, Qm…) or
    # /ipns/<domain> (DNSLink). Files are looked up at <MirrorRoot>/<Layout>/<file>.
    # Without it, ipfs-xfer only uses the HTTP mirrors.
    #MirrorRoot = /ipns/k51qzi5uqu5dlj2qkibv67ep4sdsa73fuyyf1ywbq7mh6vv5t4lrrc3c0v5kav

    # Trusted local kubo path gateways (repeatable). Use 127.0.0.1, not localhost, which
    # kubo answers as a subdomain gateway.
    #Gateway = http://127.0.0.1:8080

    # Gateways that are not trusted (public gateways, LAN peers; repeatable). Files come
    # from them as CARs, every block checked against the /ipfs MirrorRoot before a byte is
    # kept. They are raced with the local gateway and the mount.
    #TrustlessGateway = https://gateway.example.org

    # Where kubo mounts /ipfs (ipfs daemon --mount). Reads are done by a child process,
    # so a hung mount cannot stall pacman.
    #MountPoint = /ipfs

    # pacman mirrorlists whose Server lines are the HTTP fallback (repeatable).
    #Include = /etc/pacman.d/mirrorlist

    # State shared by all calls: which sources are down, and the transfer log. pacman 7
    # runs ipfs-xfer as its DownloadUser (alpm), so that user must be able to write here.
    #StateDir = /var/lib/ipfs-xfer

    # How long IPFS may go without delivering a byte before the HTTP mirrors start too.
    #HedgeDelay = 1s

    # How long connecting may take, and how long a source may send nothing at all.
    #ConnectTimeout = 10s
    #StallTimeout = 10s

    # Where repo files sit below the mirror root and below mirror URLs ($repo, $arch).
    #Layout = $repo/os/$arch

    # pacman's config, read for DBPath: packages are verified against its sync dbs. The
    # pacman that runs ipfs-xfer comes first (its --config, -b, -r, --sysroot), then the dbs
    # beside %o (pacstrap's ROOT/var/cache/pacman/pkg and ROOT/var/lib/pacman/sync), then this.
    #PacmanConfig = /etc/pacman.conf

    # An /ipns MirrorRoot is resolved once and reused by every call for the record's TTL, at
    # most RootCacheTime; a stale root is used while a new one is looked up, and for up to
    # RootStaleLimit when every resolver fails. Resolvers, in order: the local kubo RPC
    # (trusted; none to skip it), then IPNS records from the gateways and the delegated
    # routing endpoints (verified: signature, validity, no lower sequence than seen before),
    # or DNSLink for a domain. Databases come from IPFS only when the root's lastupdate is
    # not older than the HTTP mirror's.
    #API = http://127.0.0.1:5001
    #RoutingEndpoint = https://delegated-ipfs.dev
    #RootCacheTime = 5m
    #RootStaleLimit = 1440m
    #ResolveTimeout = 5s

    # Where DNSLink TXT queries go: system (resolv.conf), an address:port, or a DNS over
    # HTTPS URL such as https://cloudflare-dns.com/dns-query.
    #DNSServer = system

    # Seeding (the ipfs-xfer-seed.hook): downloaded packages are added to the kubo node at API
    # under the mirror's exact CIDs. APIAuth is one of kubo's API.Authorizations secrets
    # (basic:user:password or bearer:token). Import is how the mirror imported its files, used
    # when the root has no ipfs-xfer-index saying so: profile=<kubo profile> and overrides
    # (cid-version=, raw-leaves=, chunker=size-N, max-links=).
    #APIAuth = bearer:token
    #Import = profile=unixfs-v0-2015

    # ipfs-xfer sync (pacman -S… with a whole transaction's downloads in parallel): how many
    # files are fetched at once.
    #ParallelDownloads = 8

    # ipfs-xfer serve (a local CacheServer for pacman): how long a file may take to be fetched
    # and verified from IPFS before the answer is 404, so pacman moves on to its mirrors.
    #ServeTimeout = 5s

    # Packages at least this big are fetched in segments from every gateway and mirror at
    # once, each segment checked against the file's blocks (needs the root's ipfs-xfer-index,
    # which gives the file's CID); none turns it off.
    #SegmentThreshold = 16MiB

    # A package that no sync db lists cannot be checked against its sha256: ipfs-xfer says so
    # and marks it in transfers.log. With yes, such a package comes only from the URL pacman
    # asked for (%u), never from IPFS or another mirror.
    #RequireVerified = no

    """
}
