// Command sentry is Dapr's certificate authority, v1.18.3, run the way upstream's cmd/sentry/app
// runs it (Apache-2.0, The Dapr Authors), with one difference: its /healthz server listens on
// --healthz-listen-address. Upstream's pkg/healthz/server takes no address and binds ":port",
// every interface; ordersaga's local stack listens on 127.0.0.1 only.
package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/dapr/dapr/cmd/sentry/options"
	"github.com/dapr/dapr/pkg/buildinfo"
	"github.com/dapr/dapr/pkg/healthz"
	"github.com/dapr/dapr/pkg/metrics"
	"github.com/dapr/dapr/pkg/modes"
	"github.com/dapr/dapr/pkg/sentry"
	"github.com/dapr/dapr/pkg/sentry/config"
	"github.com/dapr/dapr/pkg/sentry/monitoring"
	"github.com/dapr/dapr/utils"
	"github.com/dapr/kit/concurrency"
	"github.com/dapr/kit/fswatcher"
	"github.com/dapr/kit/logger"
	"github.com/dapr/kit/signals"
)

var log = logger.NewLogger("dapr.sentry")

// credentialPath is upstream's rule: a file name is taken inside the credentials directory,
// an absolute path as it is.
func credentialPath(dir, name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}

func main() {
	opts := options.New(os.Args[1:])
	if err := opts.Validate(); err != nil {
		log.Fatalf("Invalid options: %s", err)
	}
	if err := logger.ApplyOptionsToLoggers(&opts.Logger); err != nil {
		log.Fatal(err)
	}
	log.Infof("Starting Dapr Sentry certificate authority -- version %s -- commit %s", buildinfo.Version(), buildinfo.Commit())
	if err := utils.SetEnvVariables(map[string]string{utils.KubeConfigVar: opts.Kubeconfig}); err != nil {
		log.Fatalf("Error setting env: %v", err)
	}
	if err := monitoring.InitMetrics(); err != nil {
		log.Fatal(err)
	}
	if opts.OIDC.Enabled || opts.JWT.Enabled {
		log.Fatal("this build of sentry serves X.509 workload certificates only (no --oidc-enabled, --jwt-enabled)")
	}

	cfg, err := config.FromConfigName(opts.ConfigName, opts.Mode)
	if err != nil {
		log.Fatal(err)
	}
	cfg.IssuerCertPath = credentialPath(opts.IssuerCredentialsPath, opts.X509.IssuerCertFilename)
	cfg.IssuerKeyPath = credentialPath(opts.IssuerCredentialsPath, opts.X509.IssuerKeyFilename)
	cfg.RootCertPath = credentialPath(opts.IssuerCredentialsPath, opts.X509.RootCAFilename)
	cfg.TrustDomain = opts.TrustDomain
	cfg.Port = opts.Port
	cfg.ListenAddress = opts.ListenAddress
	cfg.Mode = modes.DaprMode(opts.Mode)

	watchDirs := map[string]struct{}{}
	for _, path := range []string{cfg.IssuerCertPath, cfg.IssuerKeyPath, cfg.RootCertPath} {
		watchDirs[filepath.Dir(path)] = struct{}{}
	}
	targets := make([]string, 0, len(watchDirs))
	for dir := range watchDirs {
		targets = append(targets, dir)
	}

	issuerEvent := make(chan struct{})
	// As upstream: the CA restarts (inner manager) when the issuer's files change.
	caMngrFactory := func(ctx context.Context) error {
		health := healthz.New()
		exporter := metrics.New(metrics.Options{
			Log:           log,
			Enabled:       opts.Metrics.Enabled(),
			Namespace:     metrics.DefaultMetricNamespace,
			Port:          opts.Metrics.Port(),
			ListenAddress: opts.Metrics.ListenAddress(),
			Healthz:       health,
		})
		ca, serr := sentry.New(ctx, sentry.Options{Config: cfg, Healthz: health})
		if serr != nil {
			return serr
		}
		return concurrency.NewRunnerManager(
			func(ctx context.Context) error {
				return serveHealthz(ctx, opts.HealthzListenAddress, opts.HealthzPort, health)
			},
			exporter.Start,
			ca.Start,
			func(ctx context.Context) error {
				select {
				case <-ctx.Done():
					return nil
				case <-issuerEvent:
					monitoring.IssuerCertChanged()
					for {
						select {
						case <-ctx.Done():
							return nil
						case <-issuerEvent: // batch the events of one change
						case <-time.After(2 * time.Second):
							log.Warn("Issuer credentials changed; reloading")
							return nil
						}
					}
				}
			},
		).Run(ctx)
	}

	mngr := concurrency.NewRunnerManager()
	if err := mngr.Add(func(ctx context.Context) error {
		for {
			if runErr := caMngrFactory(ctx); runErr != nil {
				return runErr
			}
			if ctx.Err() != nil {
				return nil
			}
		}
	}); err != nil {
		log.Fatal(err)
	}
	watcher, err := fswatcher.New(fswatcher.Options{Targets: targets})
	if err != nil {
		log.Fatal(err)
	}
	if err := mngr.Add(func(ctx context.Context) error {
		log.Infof("Starting watch on filesystem directories: %v", targets)
		return watcher.Run(ctx, issuerEvent)
	}); err != nil {
		log.Fatal(err)
	}
	if err := mngr.Run(signals.Context()); err != nil {
		log.Fatal(err)
	}
	log.Info("Sentry shut down gracefully")
}

// serveHealthz answers /healthz with 200 once every target of `health` is ready (503 before),
// like upstream's pkg/healthz/server, on address:port.
func serveHealthz(ctx context.Context, address string, port int, health healthz.Healthz) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !health.IsReady() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(address, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	served := make(chan error, 1)
	go func() {
		log.Infof("Healthz server is listening on %s", ln.Addr())
		if err := server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			served <- err
			return
		}
		served <- nil
	}()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(server.Shutdown(shutdown), <-served)
}
