package cli

import "flag"

// registerPolicy registers the flags of the source policy applied to streams created through
// /v1/streams and vigil.control.streams (streams.SourcePolicy; --source and --streams-file are
// not subject to it).
func (f *streamFlags) registerPolicy(fs *flag.FlagSet) {
	fs.Var((*stringList)(&f.policy.FileDirs), "stream-file-dirs", "directories whose files streams created through the API may read "+
		"(comma-separated absolute paths; default none: the API refuses local files)")
	fs.Var((*stringList)(&f.policy.AllowHosts), "stream-allow-hosts", "host names, IP addresses or CIDR prefixes API streams may read from although "+
		"they are loopback, link-local or otherwise refused, e.g. 127.0.0.1 for an RTSP server on this machine (comma-separated)")
	fs.BoolVar(&f.policy.AllowDevices, "stream-allow-devices", false, "let streams created through the API open this machine's cameras (device:N, /dev/videoN)")
	fs.Var((*stringList)(&f.policy.Schemes), "stream-schemes", "URL schemes API streams may use, some of rtsp,rtsps,http,https (default all four)")
}
