// Command edgebundle makes and checks the signed configuration bundles an
// edgebroker gateway takes from a USB stick (the file edgebroker.bundle)
// or over the LAN (push).
//
// Usage:
//
//	edgebundle keygen -o NAME
//	edgebundle pack -key K.key -serial N [-expires 720h] [-device-serial S] [-device-model M]
//	                [-enrol K.pub,...] [-retire K.pub,...] [-o edgebroker.bundle] FOLDER
//	edgebundle verify -trust K.pub[,...] [-last-serial N] [-device-serial S] [-device-model M] FILE
//	edgebundle inspect FILE
//	edgebundle lint FOLDER|FILE
//	edgebundle push [-cacert DATA/ca.crt | -pin SHA256] [-json] [-timeout 5m] https://GATEWAY:PORT FILE
//
// keygen writes a new ed25519 signing key to NAME.key (mode 0600, PEM
// PKCS #8) and its public key to NAME.pub (PEM), and prints the key id and
// the public key as a base64 one-liner for the image's trusted keys.
//
// pack lints FOLDER first and refuses a configuration that does not
// validate, then writes a bundle of every file in FOLDER (hidden files
// skipped) signed by -key. The serial must exceed the last one the gateway
// applied; the bundle expires after -expires; -device-serial and
// -device-model restrict it to matching gateways. -enrol and -retire list
// public key files the gateway should start or stop trusting. Secrets can
// be plain files: FOLDER/secrets/NAME/KEY is key KEY of Secret NAME.
//
// verify checks a bundle as a gateway trusting the -trust keys would:
// structure and hashes, signature, serial (above -last-serial), validity
// now, the device selector (only if -device-serial or -device-model is
// given) and the configuration itself.
//
// inspect prints a bundle's manifest without checking its signature.
//
// lint validates a configuration folder, a YAML file, or a bundle's
// contents with the appliance's own validator, printing every error as
// file:line: Kind/name: field: problem.
//
// push uploads a bundle to a gateway's status endpoint (edgebroker
// -status ADDR -status-tls), which applies it with exactly a stick's
// checks, and prints the report the gateway answers with (-json for the
// JSON one). The gateway is authenticated over TLS by -cacert (the
// gateway's DATA/ca.crt, or edgebroker-ca.crt from a stick's report), by
// -pin (the SHA-256 fingerprint of a certificate the gateway presents,
// its own or its CA's: openssl x509 -in ca.crt -noout -fingerprint
// -sha256), or by the system's roots; plain http is refused.
//
// Exit status: 0 on success, 1 when a check fails, 2 on usage errors.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
