package config

import (
	"regexp"
	"slices"
	"strings"
)

// Dataflow operation types (AIO's OperationType).
const (
	OperationSource                = "Source"
	OperationDestination           = "Destination"
	OperationBuiltInTransformation = "BuiltInTransformation"
)

// Dataflow is AIO's Dataflow: messages copied from a source endpoint's
// topics to a destination endpoint's topic. On the appliance one end is
// always DefaultEndpoint, the appliance's own broker, and the other a
// DataflowEndpoint of type Mqtt: a flow goes up (default to remote) or
// down (remote to default), forwarding messages unchanged.
//
// spec.profileRef (the DataflowProfile whose pods run the flow) is
// accepted and ignored, as brokerRef is. AIO's spec.requestDiskPersistence
// and the source's assetRef, serializationFormat and schemaRef are ignored
// with a warning; destination headers are refused (see aioUnsupported).
type Dataflow struct {
	Object `json:",inline" yaml:",inline"`
	Spec   DataflowSpec `json:"spec" yaml:"spec"`
}

// DataflowSpec is Dataflow.spec.
type DataflowSpec struct {
	// Mode is Enabled (default) or Disabled: a Disabled flow is validated
	// but does not run.
	Mode string `json:"mode,omitempty" yaml:"mode,omitempty"`
	// Operations are exactly one Source and one Destination, in any order.
	Operations []DataflowOperation `json:"operations" yaml:"operations"`
}

// DataflowOperation is one operation: its type and that type's settings
// only.
type DataflowOperation struct {
	// OperationType is Source or Destination (required). AIO's
	// BuiltInTransformation is refused.
	OperationType string `json:"operationType" yaml:"operationType"`
	// Name is an optional label, at most 64 characters.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// SourceSettings, for a Source.
	SourceSettings *DataflowSource `json:"sourceSettings,omitempty" yaml:"sourceSettings,omitempty"`
	// DestinationSettings, for a Destination.
	DestinationSettings *DataflowDestination `json:"destinationSettings,omitempty" yaml:"destinationSettings,omitempty"`
	// BuiltInTransformationSettings (map, filter, datasets...), accepted
	// only to be refused with the operation.
	BuiltInTransformationSettings AIOSettings `json:"builtInTransformationSettings,omitempty" yaml:"builtInTransformationSettings,omitempty"`
}

// DataflowSource is where a flow's messages come from.
type DataflowSource struct {
	// EndpointRef names the DataflowEndpoint (required); "default" is the
	// appliance's broker.
	EndpointRef string `json:"endpointRef" yaml:"endpointRef"`
	// DataSources are the MQTT topic filters subscribed to there (at least
	// one). A shared subscription is written $share/GROUP/FILTER, or
	// $shared/GROUP/FILTER as AIO's documentation spells it.
	DataSources []string `json:"dataSources" yaml:"dataSources"`
}

// DataflowDestination is where a flow's messages go.
type DataflowDestination struct {
	// EndpointRef names the DataflowEndpoint (required); "default" is the
	// appliance's broker.
	EndpointRef string `json:"endpointRef" yaml:"endpointRef"`
	// DataDestination is the topic messages are published to (required),
	// a template: ${inputTopic} is the message's topic and
	// ${inputTopic.N} its Nth level (from 1, leading and trailing '/'
	// ignored). See TopicTemplate.
	DataDestination string `json:"dataDestination" yaml:"dataDestination"`
}

func (d *Dataflow) setDefaults() {
	if d.Spec.Mode == "" {
		d.Spec.Mode = ModeEnabled
	}
}

// Enabled reports whether the flow is to run (mode is not Disabled).
func (d *Dataflow) Enabled() bool { return d.Spec.Mode != ModeDisabled }

// ends returns the indices of the Source and Destination operations, or
// -1 for one that is not there (the first of each if there are more).
func (d *Dataflow) ends() (src, dst int) {
	src, dst = -1, -1
	for i, op := range d.Spec.Operations {
		switch {
		case op.OperationType == OperationSource && src < 0:
			src = i
		case op.OperationType == OperationDestination && dst < 0:
			dst = i
		}
	}
	return src, dst
}

func (d *Dataflow) validate(s *Set, rp *report) {
	oneOf(rp, d, "spec.mode", d.Spec.Mode, ModeEnabled, ModeDisabled)
	const exactly = "a Dataflow has exactly one Source and one Destination"
	src, dst := d.ends()
	for i, op := range d.Spec.Operations {
		path := idx("spec.operations", i)
		if len(op.Name) > 64 {
			rp.add(d, path+".name", "longer than 64 characters")
		}
		if !oneOf(rp, d, path+".operationType", op.OperationType, OperationSource, OperationBuiltInTransformation, OperationDestination) {
			continue
		}
		d.checkSettingsMatch(rp, path, op)
		switch {
		case op.OperationType == OperationBuiltInTransformation:
			rp.add(d, path+".operationType", "BuiltInTransformation is not supported on the appliance: a flow forwards messages as they are; "+
				"remove the operation, and map, filter or enrich in a program on the device that subscribes and republishes")
		case op.OperationType == OperationSource && i != src:
			rp.add(d, path+".operationType", "a second Source (the first is spec.operations[%d]); %s", src, exactly)
		case op.OperationType == OperationDestination && i != dst:
			rp.add(d, path+".operationType", "a second Destination (the first is spec.operations[%d]); %s", dst, exactly)
		case op.OperationType == OperationSource:
			d.validateSource(s, rp, path+".sourceSettings", op.SourceSettings)
		default:
			d.validateDestination(s, rp, path+".destinationSettings", op.DestinationSettings)
		}
	}
	if src < 0 {
		rp.add(d, "spec.operations", "no Source operation; %s", exactly)
	}
	if dst < 0 {
		rp.add(d, "spec.operations", "no Destination operation; %s", exactly)
	}
	if src < 0 || dst < 0 {
		return
	}
	s1, d1 := d.Spec.Operations[src].SourceSettings, d.Spec.Operations[dst].DestinationSettings
	if s1 == nil || d1 == nil || s1.EndpointRef == "" || d1.EndpointRef == "" {
		return
	}
	switch {
	case s1.EndpointRef == DefaultEndpoint && d1.EndpointRef == DefaultEndpoint:
		rp.add(d, idx("spec.operations", dst)+".destinationSettings.endpointRef",
			"source and destination are both default, the appliance's own broker: a flow copies between it and a remote DataflowEndpoint")
	case s1.EndpointRef != DefaultEndpoint && d1.EndpointRef != DefaultEndpoint:
		rp.add(d, "spec.operations", "neither endpoint is default: one end of every Dataflow is the appliance's own broker (endpointRef: default), as in AIO")
	}
}

// checkSettingsMatch reports settings blocks of another operation type.
func (d *Dataflow) checkSettingsMatch(rp *report, path string, op DataflowOperation) {
	for _, g := range []struct {
		typ, field string
		given      bool
	}{
		{OperationSource, "sourceSettings", op.SourceSettings != nil},
		{OperationDestination, "destinationSettings", op.DestinationSettings != nil},
		{OperationBuiltInTransformation, "builtInTransformationSettings", op.BuiltInTransformationSettings != nil},
	} {
		if g.given && g.typ != op.OperationType {
			rp.add(d, path+"."+g.field, "only for operationType %s, not %s", g.typ, op.OperationType)
		}
	}
}

// checkEndpointRef checks that ref names an endpoint: default, or a
// DataflowEndpoint of the Set.
func (d *Dataflow) checkEndpointRef(s *Set, rp *report, path, ref string) {
	switch {
	case ref == "":
		rp.add(d, path, "required: a DataflowEndpoint, or default for the appliance's own broker")
	case ref != DefaultEndpoint && s.DataflowEndpoint(ref) == nil:
		rp.add(d, path, "DataflowEndpoint/%s not found", ref)
	}
}

func (d *Dataflow) validateSource(s *Set, rp *report, path string, src *DataflowSource) {
	if src == nil {
		rp.add(d, path, "operationType Source needs sourceSettings with endpointRef and dataSources")
		return
	}
	d.checkEndpointRef(s, rp, path+".endpointRef", src.EndpointRef)
	if len(src.DataSources) == 0 {
		rp.add(d, path+".dataSources", "at least one topic filter is required")
	}
	for i, f := range src.DataSources {
		p := idx(path+".dataSources", i)
		if msg := checkFilter(f); msg != "" {
			rp.add(d, p, "%q: %s", f, msg)
		} else if j := slices.Index(src.DataSources[:i], f); j >= 0 {
			rp.add(d, p, "%q already listed at dataSources[%d]", f, j)
		}
	}
}

func (d *Dataflow) validateDestination(s *Set, rp *report, path string, dst *DataflowDestination) {
	if dst == nil {
		rp.add(d, path, "operationType Destination needs destinationSettings with endpointRef and dataDestination")
		return
	}
	d.checkEndpointRef(s, rp, path+".endpointRef", dst.EndpointRef)
	if dst.DataDestination == "" {
		rp.add(d, path+".dataDestination", "required: the topic to publish to, e.g. site1/${inputTopic}")
	} else if _, err := ParseTopicTemplate(dst.DataDestination); err != nil {
		rp.add(d, path+".dataDestination", "%q: %v", dst.DataDestination, err)
	}
}

// Shared subscription prefixes: MQTT 5.0's, and AIO's documented spelling.
const (
	sharePrefix    = "$share/"
	aioSharePrefix = "$shared/"
)

// checkFilter checks an MQTT topic filter, which may be a shared
// subscription ($share/GROUP/FILTER or $shared/GROUP/FILTER).
func checkFilter(f string) string {
	if prefix, rest, ok := cutSharePrefix(f); ok {
		group, filter, ok := strings.Cut(rest, "/")
		switch {
		case !ok || group == "":
			return "a shared subscription is " + prefix + "GROUP/FILTER"
		case strings.ContainsAny(group, "+#"):
			return "the group name of a shared subscription has no wildcards"
		}
		f = filter
	}
	if f == "" {
		return "empty topic filter"
	}
	if len(f) > 65535 {
		return "longer than 65535 bytes"
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return "'#' must be the last level"
		case l != "#" && l != "+" && strings.ContainsAny(l, "#+"):
			return "'+' and '#' must be a whole level"
		}
	}
	return ""
}

// cutSharePrefix cuts a shared subscription prefix off f.
func cutSharePrefix(f string) (prefix, rest string, ok bool) {
	for _, prefix := range []string{sharePrefix, aioSharePrefix} {
		if rest, ok := strings.CutPrefix(f, prefix); ok {
			return prefix, rest, true
		}
	}
	return "", f, false
}

// normalizeShare writes AIO's $shared/ prefix as MQTT's $share/.
func normalizeShare(f string) string {
	if rest, ok := strings.CutPrefix(f, aioSharePrefix); ok {
		return sharePrefix + rest
	}
	return f
}

// bareInputTopic finds "$inputTopic" and "$inputTopic.N" written without
// braces: literal text in a topic, so probably a mistake.
var bareInputTopic = regexp.MustCompile(`\$inputTopic(\.[0-9]+)?`)

// dataflowWarnings explains destinations that are valid but probably not
// meant: $inputTopic without braces is literal text.
func (s *Set) dataflowWarnings(rp *report) {
	for _, d := range s.Dataflows {
		for i, op := range d.Spec.Operations {
			if op.DestinationSettings == nil {
				continue
			}
			dd := op.DestinationSettings.DataDestination
			if !bareInputTopic.MatchString(dd) {
				continue
			}
			fixed := bareInputTopic.ReplaceAllString(dd, "$${inputTopic$1}")
			rp.add(d, idx("spec.operations", i)+".destinationSettings.dataDestination",
				"%q: $inputTopic without braces is literal text in a topic; did you mean %q?", dd, fixed)
		}
	}
}
