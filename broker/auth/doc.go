// Package auth implements edgebroker's authentication and authorization
// engine: the rule model of Azure IoT Operations' BrokerAuthorization, password
// files for the username/password method, and the X.509 helpers of the X509
// authentication method. It imports only the standard library,
// golang.org/x/crypto and edgebroker/broker/topic; the broker reaches it
// through an adapter.
//
// # Authorization
//
// [Compile] validates a list of [Rule] values (spec.authorizationPolicies.rules)
// into an immutable [Policy]. Rules are allow-only and add up: a client gets
// the resources of every rule in which any principal entry matches it (a
// client ID, a username, or all pairs of one attribute map). An empty rule
// list denies everything.
//
// Topics, client ID patterns, principal client IDs and usernames, and state
// store keys of type [Pattern] may contain the tokens {principal.clientId},
// {principal.username} and {principal.attributes.NAME}. Curly braces are
// reserved for tokens. In topics a token must fill a whole topic level. A token
// whose value is missing (empty client ID or username, absent attribute)
// makes the entry that contains it match nothing. A value substituted into a
// topic must itself be a plain level: non-empty, without '/', '+' or '#' and
// not starting with '$', otherwise the filter matches nothing, so that a
// client ID such as "+" cannot widen its own grants. Values substituted into
// glob patterns are matched literally.
//
// [Policy.For] computes a client's [Grants] once, at CONNECT; the checks on
// Grants that run per PUBLISH and SUBSCRIBE allocate nothing. A Policy and its
// Grants are safe for concurrent use.
//
// Usernames are only as trustworthy as the authentication method that
// produced them: the X.509 method (certificate subject CN, see [CNUsername])
// and the password method ([Passwords.Verify]) verify them; anything else
// does not, and rules should not rely on usernames there.
//
// # Password files
//
// [ParsePasswordFile] reads the files that mosquitto_passwd writes, one
// "username:hash" per line, accepting bcrypt ($2a$, $2b$, $2y$), argon2id
// (PHC string $argon2id$v=19$m=..,t=..,p=..$salt$hash) and mosquitto's own
// $6$ (SHA-512) and $7$ (PBKDF2-SHA512) hashes. Blank lines and lines whose
// first non-blank character is '#' are ignored. (argon2id needs the
// authargon2 build tag until go.mod lists golang.org/x/sys; see argon2.go.)
//
// Per-user authorization attributes ride in an optional third field:
//
//	alice:$7$101$...$...==:building=17,organization=contoso
//
// The field is a comma-separated list of name=value pairs. Names are
// non-empty and may not contain '=', ',', '{', '}' or spaces; values are
// percent-decoded (so "%2C" is a comma and "%25" a percent sign). A line
// without the field has no attributes, so files from mosquitto_passwd parse
// unchanged. The field survives mosquitto_passwd rewriting the file for other
// users; updating the user itself with mosquitto_passwd drops it. (Note that
// mosquitto_passwd itself rejects comment and blank lines, which this parser
// allows.)
//
// # X.509
//
// [ParseDN] normalises distinguished names written in OpenSSL's one-line
// style ("CN = Contoso Root CA Cert, OU = Engineering, C = US") or RFC 4514
// style, and [SubjectDN] does the same for a certificate subject, so that
// [X509Attributes] can pick a client's attributes from its chain.
package auth
