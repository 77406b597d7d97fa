// Command nomadloader launches a Nomad plugin binary the way a Nomad agent does, with HashiCorp's own go-plugin
// client, and prints what the agent would have seen as one JSON report on stdout.
//
// Usage: nomadloader SPEC.json
//
// It follows Nomad's helper/pluginutils/loader: fingerprintPlugin (init.go) launches the binary with only the
// "base" plugin, reads PluginInfo, parses plugin_version with go-version's NewVersion, selects the API version
// (api_versions.go: v0.1.0 for devices and drivers) and reads ConfigSchema; validatePluginConfig launches it again
// and calls SetConfig with no agent config; Dispense (loader.go) launches it a third time with the plugin map of
// its type and calls SetConfig with the agent config. Then it drives the device (Fingerprint, Reserve, Stats) or
// the driver (Fingerprint, Capabilities, TaskConfigSchema, StartTask, WaitTask, DestroyTask) like the client's
// managers do, and kills the plugin through go-plugin's Client.Kill, as the agent does on shutdown.
//
// On failure the report has "error" set to the text the agent would print and the command exits 1.
//
// The gRPC stubs it imports (nomadproto/...) are generated from the repository's proto/ files at build time by
// tests/test_nomad_goplugin_client.py; nothing generated is committed.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang/protobuf/jsonpb"
	"github.com/golang/protobuf/proto"
	"github.com/golang/protobuf/ptypes"
	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	version "github.com/hashicorp/go-version"
	"google.golang.org/grpc"

	basepb "nomadproto/plugins/base/proto"
	devicepb "nomadproto/plugins/device/proto"
	driverpb "nomadproto/plugins/drivers/proto"
)

// handshake is Nomad's plugins/base/plugin.go Handshake (ProtocolVersion 2 since Nomad 0.9: gRPC plugins).
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  2,
	MagicCookieKey:   "NOMAD_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255",
}

// agentSupportedAPIVersions is Nomad's loader.AgentSupportedApiVersions.
var agentSupportedAPIVersions = map[string][]string{
	"device": {"v0.1.0"},
	"driver": {"v0.1.0"},
}

type spec struct {
	Type           string      `json:"type"`
	Cmd            []string    `json:"cmd"`
	PluginConfig   []byte      `json:"plugin_config"`
	StartTimeoutMs int         `json:"start_timeout_ms"`
	Device         *deviceSpec `json:"device"`
	Driver         *driverSpec `json:"driver"`
}

type deviceSpec struct {
	Reserve         []string `json:"reserve"`
	StatsIntervalMs int      `json:"stats_interval_ms"`
}

type driverSpec struct {
	ClientMinPort uint32   `json:"client_min_port"`
	ClientMaxPort uint32   `json:"client_max_port"`
	Task          taskSpec `json:"task"`
}

type taskSpec struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	AllocID      string            `json:"alloc_id"`
	AllocDir     string            `json:"alloc_dir"`
	DriverConfig []byte            `json:"driver_config"`
	Env          map[string]string `json:"env"`
	StdoutPath   string            `json:"stdout_path"`
	StderrPath   string            `json:"stderr_path"`
}

type launchReport struct {
	Purpose           string `json:"purpose"`
	Pid               int    `json:"pid"`
	Network           string `json:"network"`
	Address           string `json:"address"`
	Protocol          string `json:"protocol"`
	NegotiatedVersion int    `json:"negotiated_version"`
	KillMs            int64  `json:"kill_ms"`
	Exited            bool   `json:"exited"`
	ProcessGone       bool   `json:"process_gone"`
	SocketRemoved     bool   `json:"socket_removed"`
}

type pluginInfo struct {
	Type              string   `json:"type"`
	Name              string   `json:"name"`
	PluginVersion     string   `json:"plugin_version"`
	PluginAPIVersions []string `json:"plugin_api_versions"`
}

type deviceReport struct {
	Fingerprint json.RawMessage `json:"fingerprint"`
	Reserve     json.RawMessage `json:"reserve"`
	Stats       json.RawMessage `json:"stats"`
}

type driverReport struct {
	Fingerprint      json.RawMessage `json:"fingerprint"`
	Capabilities     json.RawMessage `json:"capabilities"`
	TaskConfigSchema json.RawMessage `json:"task_config_schema"`
	StartTask        json.RawMessage `json:"start_task"`
	WaitTask         json.RawMessage `json:"wait_task"`
	Stdout           string          `json:"stdout"`
	Stderr           string          `json:"stderr"`
}

type report struct {
	OK            bool                     `json:"ok"`
	Stage         string                   `json:"stage"`
	Error         string                   `json:"error,omitempty"`
	PluginInfo    *pluginInfo              `json:"plugin_info,omitempty"`
	ParsedVersion string                   `json:"parsed_version,omitempty"`
	APIVersion    string                   `json:"api_version,omitempty"`
	ConfigSchema  json.RawMessage          `json:"config_schema,omitempty"`
	Launches      []*launchReport          `json:"launches"`
	Device        *deviceReport            `json:"device,omitempty"`
	Driver        *driverReport            `json:"driver,omitempty"`
	ClientLog     []map[string]interface{} `json:"client_log"`
}

// --- go-plugin plugin map: client halves only, as Nomad's base.PluginBase, device.PluginDevice and
// drivers.PluginDriver build them ----------------------------------------------------------------------------------

var errClientOnly = errors.New("nomadloader only implements the client side")

type baseClient struct {
	base basepb.BasePluginClient
	done context.Context
}

type basePlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (basePlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return errClientOnly }

func (basePlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &baseClient{base: basepb.NewBasePluginClient(c), done: ctx}, nil
}

type deviceClient struct {
	baseClient
	device devicepb.DevicePluginClient
}

type devicePlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (devicePlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return errClientOnly }

func (devicePlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &deviceClient{
		baseClient: baseClient{base: basepb.NewBasePluginClient(c), done: ctx},
		device:     devicepb.NewDevicePluginClient(c),
	}, nil
}

type driverClient struct {
	baseClient
	driver driverpb.DriverClient
}

type driverPlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (driverPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return errClientOnly }

func (driverPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &driverClient{
		baseClient: baseClient{base: basepb.NewBasePluginClient(c), done: ctx},
		driver:     driverpb.NewDriverClient(c),
	}, nil
}

// pluginMap is Nomad's loader.getPluginMap.
func pluginMap(pluginType string) map[string]plugin.Plugin {
	m := map[string]plugin.Plugin{"base": basePlugin{}}
	switch pluginType {
	case "device":
		m["device"] = devicePlugin{}
	case "driver":
		m["driver"] = driverPlugin{}
	}
	return m
}

// --- launching ------------------------------------------------------------------------------------------------

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type loader struct {
	spec   *spec
	rep    *report
	logger hclog.Logger
}

type launched struct {
	client *plugin.Client
	raw    interface{}
	rep    *launchReport
}

// launch starts the binary and dispenses one plugin, as fingerprintPlugin and dispensePlugin do.
func (l *loader) launch(purpose, dispense string) (*launched, error) {
	cmd := exec.Command(l.spec.Cmd[0], l.spec.Cmd[1:]...)
	timeout := time.Duration(l.spec.StartTimeoutMs) * time.Millisecond
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          pluginMap(dispense),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           l.logger,
		StartTimeout:     timeout,
	})
	rpcClient, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, err
	}
	lr := &launchReport{Purpose: purpose}
	if rc := client.ReattachConfig(); rc != nil {
		lr.Pid = rc.Pid
		lr.Network = rc.Addr.Network()
		lr.Address = rc.Addr.String()
	}
	lr.Protocol = string(client.Protocol())
	lr.NegotiatedVersion = client.NegotiatedVersion()
	l.rep.Launches = append(l.rep.Launches, lr)
	raw, err := rpcClient.Dispense(dispense)
	if err != nil {
		client.Kill()
		return nil, err
	}
	return &launched{client: client, raw: raw, rep: lr}, nil
}

// kill is go-plugin's Client.Kill (graceful Shutdown through GRPCController, then SIGKILL after 2 s), and what it
// left behind: whether the process is gone and its socket removed.
func (p *launched) kill() {
	start := time.Now()
	p.client.Kill()
	p.rep.KillMs = time.Since(start).Milliseconds()
	p.rep.Exited = p.client.Exited()
	if p.rep.Pid > 0 {
		p.rep.ProcessGone = errors.Is(syscall.Kill(p.rep.Pid, 0), syscall.ESRCH)
	}
	if p.rep.Network == "unix" {
		_, err := os.Stat(p.rep.Address)
		p.rep.SocketRemoved = errors.Is(err, os.ErrNotExist)
	}
}

// multierrorText formats one error as go-multierror's ListFormatFunc does (the loader wraps errors in it).
func multierrorText(err error) string {
	return fmt.Sprintf("1 error occurred:\n\t* %s\n\n", err)
}

func pbJSON(m proto.Message) json.RawMessage {
	var buf bytes.Buffer
	if err := (&jsonpb.Marshaler{OrigName: true, EmitDefaults: true}).Marshal(&buf, m); err != nil {
		return json.RawMessage(fmt.Sprintf("%q", "jsonpb: "+err.Error()))
	}
	return buf.Bytes()
}

// fingerprint is loader.fingerprintPlugin.
func (l *loader) fingerprint() (*basepb.PluginInfoResponse, string, error) {
	exePath := l.spec.Cmd[0]
	p, err := l.launch("fingerprint", "base")
	if err != nil {
		return nil, "", err
	}
	defer p.kill()
	b := p.raw.(*baseClient)

	l.rep.Stage = "PluginInfo"
	presp, err := b.base.PluginInfo(b.done, &basepb.PluginInfoRequest{})
	if err != nil {
		return nil, "", fmt.Errorf("failed to get plugin info for plugin %q: %v", exePath, err)
	}
	// plugins/base/client.go PluginInfo: only DRIVER and DEVICE are plugin types.
	var ptype string
	switch presp.GetType() {
	case basepb.PluginType_DRIVER:
		ptype = "driver"
	case basepb.PluginType_DEVICE:
		ptype = "device"
	default:
		return nil, "", fmt.Errorf("failed to get plugin info for plugin %q: plugin is of unknown type: %q",
			exePath, presp.GetType().String())
	}
	l.rep.PluginInfo = &pluginInfo{
		Type:              ptype,
		Name:              presp.GetName(),
		PluginVersion:     presp.GetPluginVersion(),
		PluginAPIVersions: presp.GetPluginApiVersions(),
	}

	l.rep.Stage = "version"
	v, err := version.NewVersion(presp.GetPluginVersion())
	if err != nil {
		return nil, "", fmt.Errorf("failed to parse plugin %q (%v) version %q: %v",
			presp.GetName(), exePath, presp.GetPluginVersion(), err)
	}
	l.rep.ParsedVersion = v.String()

	l.rep.Stage = "api_version"
	av, err := selectAPIVersion(ptype, presp.GetPluginApiVersions())
	if err != nil {
		return nil, "", fmt.Errorf("failed to validate API versions %v for plugin %s (%v): %v",
			presp.GetPluginApiVersions(), presp.GetName(), exePath, err)
	}
	if av == "" {
		// The agent only logs this and skips the plugin; for a test that is a failure all the same.
		return nil, "", fmt.Errorf("skipping plugin because supported API versions for plugin and Nomad do not overlap"+
			" (plugin %s, path %s)", presp.GetName(), exePath)
	}
	l.rep.APIVersion = av

	l.rep.Stage = "ConfigSchema"
	sresp, err := b.base.ConfigSchema(b.done, &basepb.ConfigSchemaRequest{})
	if err != nil {
		return nil, "", fmt.Errorf("failed to get plugin config schema for plugin %q: %v", exePath, err)
	}
	if sresp.GetSpec() != nil {
		l.rep.ConfigSchema = pbJSON(sresp.GetSpec())
	}
	return presp, ptype, nil
}

// selectAPIVersion is loader.selectApiVersion.
func selectAPIVersion(ptype string, pluginVersions []string) (string, error) {
	if len(pluginVersions) == 0 {
		return "", fmt.Errorf("plugin provided no compatible API versions")
	}
	var parsed []*version.Version
	for _, s := range pluginVersions {
		v, err := version.NewVersion(s)
		if err != nil {
			return "", fmt.Errorf("plugin provided invalid versions: failed to convert version %q : %v", s, err)
		}
		parsed = append(parsed, v)
	}
	supported, ok := agentSupportedAPIVersions[ptype]
	if !ok {
		return "", fmt.Errorf("unsupported plugin type %q", ptype)
	}
	for _, s := range supported {
		sv := version.Must(version.NewVersion(s))
		for _, pv := range parsed {
			if sv.Equal(pv) {
				return pv.Original(), nil
			}
		}
	}
	return "", nil
}

func (l *loader) run() error {
	s := l.spec
	l.rep.Stage = "launch"
	info, ptype, err := l.fingerprint()
	if err != nil {
		return fmt.Errorf("failed to initialize plugin loader: failed to fingerprint plugins: %s", multierrorText(err))
	}
	id := fmt.Sprintf("%q (%v)", info.GetName(), ptype)
	if ptype != s.Type {
		// The agent looks plugins up by (name, type): one of the other type is not found.
		return fmt.Errorf("unknown plugin with name %q and type %q", info.GetName(), s.Type)
	}

	// loader.validatePluginConfig: a fresh instance, SetConfig without agent config.
	l.rep.Stage = "validate_config"
	p, err := l.launch("validate_config", ptype)
	if err != nil {
		return fmt.Errorf("parsing plugin configurations failed: plugin %s: failed to dispense plugin: failed to launch plugin: %v", id, err)
	}
	b := baseOf(p.raw)
	_, err = b.base.SetConfig(b.done, &basepb.SetConfigRequest{
		MsgpackConfig:    s.PluginConfig,
		PluginApiVersion: l.rep.APIVersion,
	})
	p.kill()
	if err != nil {
		return fmt.Errorf("parsing plugin configurations failed: plugin %s: setting config for plugin %s failed: %v", id, id, err)
	}

	// loader.Dispense, as the device and driver managers call it.
	l.rep.Stage = "dispense"
	p, err = l.launch("run", ptype)
	if err != nil {
		return fmt.Errorf("failed to launch plugin: %v", err)
	}
	defer p.kill()
	b = baseOf(p.raw)
	agent := &basepb.NomadConfig{}
	if s.Driver != nil {
		agent.Driver = &basepb.NomadDriverConfig{ClientMinPort: s.Driver.ClientMinPort, ClientMaxPort: s.Driver.ClientMaxPort}
	}
	l.rep.Stage = "SetConfig"
	if _, err := b.base.SetConfig(b.done, &basepb.SetConfigRequest{
		MsgpackConfig:    s.PluginConfig,
		NomadConfig:      agent,
		PluginApiVersion: l.rep.APIVersion,
	}); err != nil {
		return fmt.Errorf("setting config for plugin %s failed: %v", id, err)
	}
	switch ptype {
	case "device":
		return l.runDevice(p.raw.(*deviceClient))
	default:
		return l.runDriver(p.raw.(*driverClient))
	}
}

func baseOf(raw interface{}) *baseClient {
	switch c := raw.(type) {
	case *deviceClient:
		return &c.baseClient
	case *driverClient:
		return &c.baseClient
	default:
		return raw.(*baseClient)
	}
}

func (l *loader) runDevice(c *deviceClient) error {
	ds := l.spec.Device
	if ds == nil {
		ds = &deviceSpec{}
	}
	rep := &deviceReport{}
	l.rep.Device = rep
	ctx, cancel := context.WithTimeout(c.done, 30*time.Second)
	defer cancel()

	l.rep.Stage = "device.Fingerprint"
	fctx, fcancel := context.WithCancel(ctx)
	stream, err := c.device.Fingerprint(fctx, &devicepb.FingerprintRequest{})
	if err != nil {
		fcancel()
		return fmt.Errorf("failed to fingerprint devices: %v", err)
	}
	first, err := stream.Recv()
	fcancel()
	if err != nil {
		return fmt.Errorf("failed to fingerprint devices: %v", err)
	}
	rep.Fingerprint = pbJSON(first)

	if len(ds.Reserve) > 0 {
		l.rep.Stage = "device.Reserve"
		resp, err := c.device.Reserve(ctx, &devicepb.ReserveRequest{DeviceIds: ds.Reserve})
		if err != nil {
			return fmt.Errorf("failed to reserve devices %v: %v", ds.Reserve, err)
		}
		rep.Reserve = pbJSON(resp)
	}

	l.rep.Stage = "device.Stats"
	interval := time.Duration(ds.StatsIntervalMs) * time.Millisecond
	if interval <= 0 {
		interval = time.Second
	}
	sctx, scancel := context.WithCancel(ctx)
	sstream, err := c.device.Stats(sctx, &devicepb.StatsRequest{CollectionInterval: ptypes.DurationProto(interval)})
	if err != nil {
		scancel()
		return fmt.Errorf("failed to collect device stats: %v", err)
	}
	stats, err := sstream.Recv()
	scancel()
	if err != nil {
		return fmt.Errorf("failed to collect device stats: %v", err)
	}
	rep.Stats = pbJSON(stats)
	l.rep.Stage = "done"
	return nil
}

func (l *loader) runDriver(c *driverClient) error {
	if l.spec.Driver == nil {
		return errors.New("spec: a driver plugin needs a \"driver\" section with the task to run")
	}
	ts := l.spec.Driver.Task
	rep := &driverReport{}
	l.rep.Driver = rep
	ctx, cancel := context.WithTimeout(c.done, 30*time.Second)
	defer cancel()

	l.rep.Stage = "driver.Fingerprint"
	fctx, fcancel := context.WithCancel(ctx)
	stream, err := c.driver.Fingerprint(fctx, &driverpb.FingerprintRequest{})
	if err != nil {
		fcancel()
		return fmt.Errorf("failed to fingerprint driver: %v", err)
	}
	first, err := stream.Recv()
	fcancel()
	if err != nil {
		return fmt.Errorf("failed to fingerprint driver: %v", err)
	}
	rep.Fingerprint = pbJSON(first)

	l.rep.Stage = "driver.Capabilities"
	caps, err := c.driver.Capabilities(ctx, &driverpb.CapabilitiesRequest{})
	if err != nil {
		return fmt.Errorf("failed to get driver capabilities: %v", err)
	}
	rep.Capabilities = pbJSON(caps)

	l.rep.Stage = "driver.TaskConfigSchema"
	schema, err := c.driver.TaskConfigSchema(ctx, &driverpb.TaskConfigSchemaRequest{})
	if err != nil {
		return fmt.Errorf("failed to get task config schema: %v", err)
	}
	rep.TaskConfigSchema = pbJSON(schema)

	l.rep.Stage = "driver.StartTask"
	start, err := c.driver.StartTask(ctx, &driverpb.StartTaskRequest{Task: &driverpb.TaskConfig{
		Id:                  ts.ID,
		Name:                ts.Name,
		AllocId:             ts.AllocID,
		AllocDir:            ts.AllocDir,
		MsgpackDriverConfig: ts.DriverConfig,
		Env:                 ts.Env,
		StdoutPath:          ts.StdoutPath,
		StderrPath:          ts.StderrPath,
	}})
	if err != nil {
		return fmt.Errorf("failed to start task %q: %v", ts.ID, err)
	}
	rep.StartTask = pbJSON(start)

	l.rep.Stage = "driver.WaitTask"
	wait, err := c.driver.WaitTask(ctx, &driverpb.WaitTaskRequest{TaskId: ts.ID})
	if err != nil {
		return fmt.Errorf("failed to wait on task %q: %v", ts.ID, err)
	}
	rep.WaitTask = pbJSON(wait)
	rep.Stdout = readFile(ts.StdoutPath)
	rep.Stderr = readFile(ts.StderrPath)

	l.rep.Stage = "driver.DestroyTask"
	if _, err := c.driver.DestroyTask(ctx, &driverpb.DestroyTaskRequest{TaskId: ts.ID, Force: true}); err != nil {
		return fmt.Errorf("failed to destroy task %q: %v", ts.ID, err)
	}
	l.rep.Stage = "done"
	return nil
}

func readFile(path string) string {
	if path == "" {
		return ""
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(data)
}

// parseLog turns the go-plugin client's hclog JSON lines (its own and the plugin's relayed stderr) into objects.
func parseLog(text string) []map[string]interface{} {
	out := []map[string]interface{}{}
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		entry := map[string]interface{}{}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			entry = map[string]interface{}{"@level": "unparsed", "@message": line}
		}
		out = append(out, entry)
	}
	return out
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: nomadloader SPEC.json")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s := &spec{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
		os.Exit(2)
	}
	if len(s.Cmd) == 0 || (s.Type != "device" && s.Type != "driver") {
		fmt.Fprintf(os.Stderr, "%s: expected \"cmd\" (non-empty) and \"type\" (device or driver)\n", os.Args[1])
		os.Exit(2)
	}
	logs := &lockedBuffer{}
	l := &loader{
		spec: s,
		rep:  &report{Launches: []*launchReport{}},
		logger: hclog.New(&hclog.LoggerOptions{
			Name:       "plugin_loader",
			Output:     io.MultiWriter(logs, os.Stderr),
			Level:      hclog.Trace,
			JSONFormat: true,
		}),
	}
	runErr := l.run()
	l.rep.OK = runErr == nil
	if runErr != nil {
		l.rep.Error = runErr.Error()
	}
	l.rep.ClientLog = parseLog(logs.String())
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(l.rep); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if runErr != nil {
		fmt.Fprintln(os.Stderr, runErr)
		os.Exit(1)
	}
}
