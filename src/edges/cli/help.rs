//! `kproxy --help` and `kproxy check --help`.

pub const HELP: &str = "\
kproxy: a small drop-in replacement for `kubectl proxy`, made to run as a Pod sidecar.

It listens on 127.0.0.1:8001 and forwards each request to the Kubernetes API server,
adding the Pod's service-account token and checking the server's certificate, so that
the Pod's other containers can `curl localhost:8001/api` without credentials.

Usage:
  kproxy [flags]

Where the API server is, and who to be, as kubectl finds them: --kubeconfig FILE, else
the files in KUBECONFIG, else ~/.kube/config, with its current context; else, in a Pod,
KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT with the service-account CA and
token (so in a Pod no flag is needed); the flags below override either.

Proxy flags (as in kubectl proxy):
  -p, --port PORT              Port to listen on; 0 picks a free port (default 8001)
      --address ADDR           IP address to listen on (default 127.0.0.1)
  -u, --unix-socket PATH       Listen on a Unix socket (mode 0700) instead of TCP
      --accept-hosts REGEXES   Hosts to accept (default '^localhost$,^127\\.0\\.0\\.1$,^\\[::1\\]$')
      --accept-paths REGEXES   Paths to accept (default '^.*')
      --reject-paths REGEXES   Paths to reject, checked first
                               (default '^/api/.*/pods/.*/exec,^/api/.*/pods/.*/attach')
      --reject-methods REGEXES HTTP methods to reject (default '^$', i.e. none)
      --accept-origins REGEXES Browser origins to accept; requests without an Origin
                               header (curl, kubectl) always pass (default: http(s) on
                               localhost, 127.0.0.1 and [::1], any port)
      --api-prefix PREFIX      Serve the API under this prefix (default '/')
  -w, --www DIR                Also serve the files in DIR (never outside it; no listings)
  -P, --www-prefix PREFIX      ...under this prefix (default '/static/')
      --disable-filter         Turn off all the filters above (unsafe: open to XSRF)
      --keepalive DURATION     TCP keep-alive period of upgraded connections (exec, attach,
                               port-forward); 0 means the default 15s, negative turns it off
  -v, --v LEVEL                Log verbosity; 4 and above logs one line per request

  REGEXES are comma-separated regular expressions, matched anywhere in the value unless
  anchored, as kubectl does. Paths are matched percent-decoded. A path with '.', '..'
  or empty segments (in any spelling) is answered 301 to its cleaned form, as kubectl
  does, and never forwarded as it is.

Cluster flags (as kubectl's global flags):
      --kubeconfig FILE        kubeconfig file to use (instead of KUBECONFIG, ~/.kube/config)
      --context NAME           kubeconfig context to use (default: its current-context)
      --cluster NAME           kubeconfig cluster to use, instead of the context's
      --user NAME              kubeconfig user to use, instead of the context's
  -s, --server URL             API server URL (default: the kubeconfig's, or in-cluster)
      --append-server-path     Add the server URL's path (Rancher: /k8s/clusters/ID) to
                               every request path
      --certificate-authority FILE
                               CA bundle (PEM) to verify the API server with
      --token TOKEN            Bearer token (prefer --token-file: argv is visible in /proc)
      --token-file FILE        Read the bearer token from FILE, re-read when it changes
      --client-certificate FILE
      --client-key FILE        Client certificate (PEM, with its chain) and key for TLS
      --username NAME
      --password PASSWORD      Basic authentication
      --as USER                Impersonate USER (adds Impersonate-User)
      --as-group GROUP         Impersonate GROUP too; repeat for several
      --as-uid UID             Impersonate this UID too
      --tls-server-name NAME   Server name to verify the certificate against
      --exec-timeout DURATION  Stop a kubeconfig's exec credential plugin, and what it
                               started, if it runs longer (default 30s)
      --insecure-skip-tls-verify
                               Do not verify the API server's certificate (unsafe)
      --serviceaccount-dir DIR Where in-cluster credentials live
                               (default /var/run/secrets/kubernetes.io/serviceaccount)

Limits:
      --max-connections N      Clients served at once; more get 503 (default 256)
      --max-upstream-connections N
                               Connections to the API server shared by ordinary
                               requests, which wait their turn when all are busy
                               (default 32); watches, followed logs and tunnels get
                               their own
      --header-timeout DURATION
                               Time for a request head once begun, or for a stalled
                               request body (default 30s); then 408 and close
      --idle-timeout DURATION  Close a keep-alive connection idle this long (default 2m)
  Watches, log streams and exec/port-forward tunnels have no timeout.

Operating (kproxy's own; see docs/operating.md):
      --metrics-address HOST:PORT
                               Serve Prometheus metrics at http://HOST:PORT/metrics
                               (off by default; 0.0.0.0:9091 to let Prometheus in)
      --log-format FORMAT      text (default) or json: one object per line, with each
                               request's fields at -v 4 and above

Process flags:
      --grace-period DURATION  On SIGTERM/SIGINT, time allowed for requests in flight (default 5s)
  -h, --help                   Show this help
      --version                Show the version

Probing a running kproxy (a scratch image has no curl): kproxy check --help
";

pub const CHECK_HELP: &str = "\
kproxy check: exit 0 if a kproxy answers on this address, non-zero with a reason if not.

For Kubernetes exec probes: the kubelet's httpGet and tcpSocket probes dial the Pod IP,
which cannot reach a proxy listening on 127.0.0.1, and a scratch image has no curl.

Usage:
  kproxy check [flags]

Flags:
  -p, --port PORT          Port kproxy listens on (default 8001)
      --address ADDR       Address kproxy listens on (default 127.0.0.1)
  -u, --unix-socket PATH   Unix socket kproxy listens on
      --api-prefix PREFIX  kproxy's --api-prefix, for --ready (default '/')
      --host NAME          Host header to send, one that kproxy's --accept-hosts
                           accepts (default localhost)
      --timeout DURATION   Give up after this long (default 1s)
      --ready              Also ask the API server, through kproxy, for /readyz.
                           Use it for readiness only: a liveness probe that depends on
                           the API server restarts every sidecar in the cluster when the
                           API server has a bad minute, which only adds load to it.
";
