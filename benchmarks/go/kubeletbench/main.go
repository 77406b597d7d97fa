// kubeletbench: the Go side of benchmarks/kubelet_allocate.py.
//
//	kubeletbench client -socket PATH [-allocations N] [-warmup N] [-updates N] [-control FIFO]
//	kubeletbench server -socket PATH [-devices N] [-control FIFO]
//
// client acts as kubelet's devicemanager: it dials a device plugin's Unix socket the way kubelet does (a custom
// dialer, no TLS), reads the first ListAndWatch message to learn the devices, then times -allocations sequential
// Allocate calls of one healthy device each, and then -updates ListAndWatch updates: for update k it writes "k\n"
// to the -control FIFO (the server under test then marks device k of its sorted list Unhealthy) and times until
// the stream delivers a list where that device is Unhealthy. It prints one JSON object on stdout.
//
// server is the Go peer, a minimal device plugin like generic-device-plugin: devices dev00000.. each with a mount
// and an env; ListAndWatch sends the full list on every change; Allocate looks the ids up, checks health and
// merges mounts and envs (INVALID_ARGUMENT for an unknown or unhealthy id). Lines "k\n" on the -control FIFO mark
// device k Unhealthy (and the others Healthy).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "kubeletproto"
)

func dial(socket string) (*grpc.ClientConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// As kubelet's devicemanager dials a plugin endpoint.
	return grpc.DialContext(ctx, socket, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}))
}

type percentiles struct {
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Mean float64 `json:"mean_ms"`
}

func summarize(samples []time.Duration) percentiles {
	if len(samples) == 0 {
		return percentiles{}
	}
	sorted := append([]time.Duration(nil), samples...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var total time.Duration
	for _, s := range sorted {
		total += s
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	p99 := len(sorted) * 99 / 100
	if p99 >= len(sorted) {
		p99 = len(sorted) - 1
	}
	median := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	return percentiles{P50: ms(median), P99: ms(sorted[p99]), Mean: ms(total / time.Duration(len(sorted)))}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kubeletbench: "+format+"\n", args...)
	os.Exit(1)
}

func runClient(args []string) {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	socket := fs.String("socket", "", "the device plugin's socket")
	allocations := fs.Int("allocations", 2000, "timed Allocate calls")
	warmup := fs.Int("warmup", 200, "untimed Allocate calls first")
	updates := fs.Int("updates", 0, "timed ListAndWatch updates (needs -control)")
	control := fs.String("control", "", "FIFO the server under test reads update requests from")
	fs.Parse(args)
	conn, err := dial(*socket)
	if err != nil {
		fail("dial %s: %v", *socket, err)
	}
	defer conn.Close()
	client := pb.NewDevicePluginClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := client.ListAndWatch(ctx, &pb.Empty{})
	if err != nil {
		fail("ListAndWatch: %v", err)
	}
	first, err := stream.Recv()
	if err != nil {
		fail("ListAndWatch: %v", err)
	}
	var ids []string
	for _, d := range first.Devices {
		if d.Health == "Healthy" {
			ids = append(ids, d.ID)
		}
	}
	sort.Strings(ids)
	if len(ids) == 0 {
		fail("no healthy device listed")
	}
	allocate := func(i int) time.Duration {
		request := &pb.AllocateRequest{ContainerRequests: []*pb.ContainerAllocateRequest{
			{DevicesIds: []string{ids[(i*7)%len(ids)]}},
		}}
		t0 := time.Now()
		reply, err := client.Allocate(context.Background(), request)
		elapsed := time.Since(t0)
		if err != nil {
			fail("Allocate: %v", err)
		}
		if len(reply.ContainerResponses) != 1 {
			fail("Allocate: %d container responses, expected 1", len(reply.ContainerResponses))
		}
		return elapsed
	}
	for i := 0; i < *warmup; i++ {
		allocate(i)
	}
	samples := make([]time.Duration, 0, *allocations)
	started := time.Now()
	for i := 0; i < *allocations; i++ {
		samples = append(samples, allocate(i))
	}
	seconds := time.Since(started).Seconds()
	result := map[string]interface{}{
		"devices":  len(first.Devices),
		"allocate": summarize(samples),
		"calls_per_s": int(float64(*allocations) / seconds),
	}
	if *updates > 0 && *control != "" {
		fifo, err := os.OpenFile(*control, os.O_WRONLY, 0)
		if err != nil {
			fail("open %s: %v", *control, err)
		}
		all := make([]string, 0, len(first.Devices))
		for _, d := range first.Devices {
			all = append(all, d.ID)
		}
		sort.Strings(all)
		latencies := make([]time.Duration, 0, *updates)
		for k := 0; k < *updates; k++ {
			index := k % len(all)
			t0 := time.Now()
			if _, err := fmt.Fprintf(fifo, "%d\n", index); err != nil {
				fail("write %s: %v", *control, err)
			}
			for {
				message, err := stream.Recv()
				if err != nil {
					fail("ListAndWatch: %v", err)
				}
				if unhealthy(message, all[index]) {
					break
				}
			}
			latencies = append(latencies, time.Since(t0))
		}
		fifo.Close()
		result["list_and_watch_update"] = summarize(latencies)
	}
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
}

func unhealthy(message *pb.ListAndWatchResponse, id string) bool {
	for _, d := range message.Devices {
		if d.ID == id {
			return d.Health == "Unhealthy"
		}
	}
	return false
}

// --- the Go device plugin -------------------------------------------------------------------------------------

type device struct {
	healthy bool
	mounts  []*pb.Mount
	envs    map[string]string
}

type plugin struct {
	mu      sync.RWMutex
	ids     []string
	devices map[string]*device
	changed chan struct{}
}

func newPlugin(count int) *plugin {
	p := &plugin{devices: map[string]*device{}, changed: make(chan struct{})}
	for i := 0; i < count; i++ {
		id := fmt.Sprintf("dev%05d", i)
		p.ids = append(p.ids, id)
		p.devices[id] = &device{
			healthy: true,
			mounts:  []*pb.Mount{{ContainerPath: fmt.Sprintf("/dev-data/%d", i), HostPath: fmt.Sprintf("/srv/dev%d", i)}},
			envs:    map[string]string{fmt.Sprintf("DEV_%d", i): "1"},
		}
	}
	return p
}

// markUnhealthy makes device index the only unhealthy one and wakes every stream.
func (p *plugin) markUnhealthy(index int) {
	p.mu.Lock()
	devices := make(map[string]*device, len(p.devices))
	for i, id := range p.ids {
		d := *p.devices[id]
		d.healthy = i != index
		devices[id] = &d
	}
	p.devices = devices
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pb.Empty) (*pb.DevicePluginOptions, error) {
	return &pb.DevicePluginOptions{}, nil
}

func (p *plugin) ListAndWatch(_ *pb.Empty, stream pb.DevicePlugin_ListAndWatchServer) error {
	for {
		p.mu.RLock()
		changed := p.changed
		message := &pb.ListAndWatchResponse{Devices: make([]*pb.Device, 0, len(p.ids))}
		for _, id := range p.ids {
			health := "Healthy"
			if !p.devices[id].healthy {
				health = "Unhealthy"
			}
			message.Devices = append(message.Devices, &pb.Device{ID: id, Health: health})
		}
		p.mu.RUnlock()
		if err := stream.Send(message); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

func (p *plugin) GetPreferredAllocation(context.Context, *pb.PreferredAllocationRequest) (*pb.PreferredAllocationResponse, error) {
	return nil, status.Error(codes.Unimplemented, "no preferred allocation")
}

func (p *plugin) Allocate(_ context.Context, request *pb.AllocateRequest) (*pb.AllocateResponse, error) {
	p.mu.RLock()
	devices := p.devices
	p.mu.RUnlock()
	response := &pb.AllocateResponse{}
	for _, container := range request.ContainerRequests {
		reply := &pb.ContainerAllocateResponse{Envs: map[string]string{}}
		for _, id := range container.DevicesIds {
			d, ok := devices[id]
			if !ok || !d.healthy {
				return nil, status.Errorf(codes.InvalidArgument, "device %q cannot be allocated", id)
			}
			reply.Mounts = append(reply.Mounts, d.mounts...)
			for k, v := range d.envs {
				reply.Envs[k] = v
			}
		}
		response.ContainerResponses = append(response.ContainerResponses, reply)
	}
	return response, nil
}

func (p *plugin) PreStartContainer(context.Context, *pb.PreStartContainerRequest) (*pb.PreStartContainerResponse, error) {
	return nil, status.Error(codes.Unimplemented, "no pre-start")
}

func runServer(args []string) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	socket := fs.String("socket", "", "where to listen")
	count := fs.Int("devices", 1000, "devices to serve")
	control := fs.String("control", "", "FIFO to read update requests from")
	fs.Parse(args)
	p := newPlugin(*count)
	os.Remove(*socket)
	listener, err := net.Listen("unix", *socket)
	if err != nil {
		fail("listen %s: %v", *socket, err)
	}
	server := grpc.NewServer()
	pb.RegisterDevicePluginServer(server, p)
	if *control != "" {
		go func() {
			// Opened read-write so the FIFO never reports end of file between clients.
			fifo, err := os.OpenFile(*control, os.O_RDWR, 0)
			if err != nil {
				fail("open %s: %v", *control, err)
			}
			lines := bufio.NewScanner(fifo)
			for lines.Scan() {
				index, err := strconv.Atoi(lines.Text())
				if err == nil {
					p.markUnhealthy(index)
				}
			}
		}()
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		server.Stop()
	}()
	fmt.Println("ready")
	if err := server.Serve(listener); err != nil {
		fail("serve: %v", err)
	}
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: kubeletbench client|server [flags]")
	}
	switch os.Args[1] {
	case "client":
		runClient(os.Args[2:])
	case "server":
		runServer(os.Args[2:])
	default:
		fail("unknown mode %q, expected client or server", os.Args[1])
	}
}
