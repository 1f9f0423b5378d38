//! Host-name matching for virtual-host selection by SNI, in httpd's manner.
//!
//! - `ServerName` and plain `ServerAlias` names match exactly, ignoring ASCII case.
//! - `ServerAlias` names containing `*` or `?` match as httpd's
//!   `ap_strcasecmp_match` does: `*` is any sequence of characters (dots included),
//!   `?` exactly one character, case-insensitive, no escapes.
//! - Certificate names follow RFC 6125 instead: a `*` is only allowed as the whole
//!   left-most label and stands for exactly one label.
//!
//! A single trailing dot (fully qualified form) is ignored on both sides.

fn strip_dot(s: &str) -> &str {
    s.strip_suffix('.').unwrap_or(s)
}

/// Exact host-name equality, ignoring ASCII case and a trailing dot.
pub fn names_equal(a: &str, b: &str) -> bool {
    strip_dot(a).eq_ignore_ascii_case(strip_dot(b))
}

/// Whether a `ServerAlias` value is a wildcard pattern (contains `*` or `?`).
pub fn is_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// `ap_strcasecmp_match`-style glob match of `name` against `pattern`.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p = strip_dot(pattern).as_bytes();
    let n = strip_dot(name).as_bytes();
    // Iterative glob with single-star backtracking: linear in practice.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && (p[pi] == b'?' || p[pi].eq_ignore_ascii_case(&n[ni])) {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Whether a `ServerName`/`ServerAlias` entry matches `name`: exact for plain names,
/// glob for wildcard aliases.
pub fn server_name_matches(entry: &str, name: &str) -> bool {
    if is_wildcard(entry) {
        wildcard_match(entry, name)
    } else {
        names_equal(entry, name)
    }
}

/// RFC 6125 matching of a certificate DNS name (`a.example`, `*.example.org`)
/// against a host name.
pub fn cert_name_matches(cert_name: &str, host: &str) -> bool {
    let c = strip_dot(cert_name);
    let h = strip_dot(host);
    if let Some(suffix) = c.strip_prefix("*.") {
        if suffix.is_empty() || suffix.contains('*') {
            return false;
        }
        match h.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        }
    } else {
        !c.contains('*') && c.eq_ignore_ascii_case(h)
    }
}

/// One virtual host as seen by the matcher.
#[derive(Debug, Clone)]
struct Entry<Id> {
    id: Id,
    names: Vec<String>,
    plain_aliases: Vec<String>,
    wild_aliases: Vec<String>,
}

/// Picks the virtual host for an SNI name: the first host, in the order added, whose
/// names (`ServerName`), plain aliases or wildcard aliases match.
#[derive(Debug, Clone)]
pub struct VhostMatcher<Id> {
    entries: Vec<Entry<Id>>,
}

impl<Id> Default for VhostMatcher<Id> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<Id> VhostMatcher<Id> {
    /// An empty matcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a virtual host with its names (usually the one `ServerName`, without a
    /// port) and its `ServerAlias` values.
    pub fn add<N, A>(&mut self, id: Id, names: N, aliases: A)
    where
        N: IntoIterator,
        N::Item: Into<String>,
        A: IntoIterator,
        A::Item: Into<String>,
    {
        let names = names.into_iter().map(Into::into).collect();
        let (wild, plain): (Vec<String>, Vec<String>) = aliases
            .into_iter()
            .map(Into::into)
            .partition(|a: &String| is_wildcard(a));
        self.entries.push(Entry {
            id,
            names,
            plain_aliases: plain,
            wild_aliases: wild,
        });
    }

    /// The number of virtual hosts.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no virtual host was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first virtual host matching `sni`.
    pub fn find(&self, sni: &str) -> Option<&Id> {
        self.entries
            .iter()
            .find(|e| {
                e.names.iter().any(|n| names_equal(n, sni))
                    || e.plain_aliases.iter().any(|n| names_equal(n, sni))
                    || e.wild_aliases.iter().any(|p| wildcard_match(p, sni))
            })
            .map(|e| &e.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact() {
        assert!(names_equal("A.Example.ORG", "a.example.org"));
        assert!(names_equal("a.example.org.", "a.example.org"));
        assert!(!names_equal("a.example.org", "b.example.org"));
    }

    #[test]
    fn globs_like_ap_strcasecmp_match() {
        assert!(wildcard_match("*.example.org", "www.example.org"));
        assert!(wildcard_match("*.example.org", "a.b.example.org"));
        assert!(!wildcard_match("*.example.org", "example.org"));
        assert!(wildcard_match("*.EXAMPLE.org", "x.example.ORG"));
        assert!(wildcard_match("www?.example.org", "www1.example.org"));
        assert!(!wildcard_match("www?.example.org", "www.example.org"));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match("w*w.*.org", "www.example.org"));
        assert!(wildcard_match("**.org", "x.org"));
        assert!(!wildcard_match("", "x"));
        assert!(wildcard_match("", ""));
    }

    #[test]
    fn cert_names() {
        assert!(cert_name_matches("*.example.org", "a.example.org"));
        assert!(cert_name_matches("*.example.org", "A.EXAMPLE.org"));
        assert!(!cert_name_matches("*.example.org", "a.b.example.org"));
        assert!(!cert_name_matches("*.example.org", "example.org"));
        assert!(!cert_name_matches("*.example.org", ".example.org"));
        assert!(!cert_name_matches("a*.example.org", "ab.example.org"));
        assert!(!cert_name_matches("*.", "a."));
        assert!(cert_name_matches("a.example.org", "A.example.org."));
    }

    #[test]
    fn matcher_first_match_wins() {
        let mut m = VhostMatcher::new();
        m.add(1, ["a.example.org"], ["alias.example.org"]);
        m.add(2, ["b.example.org"], ["*.example.org"]);
        m.add(3, ["c.example.org"], Vec::<String>::new());
        m.add(4, ["z.example.net"], ["*.example.net", "?.example.com"]);
        assert_eq!(m.find("A.example.org"), Some(&1));
        assert_eq!(m.find("alias.example.org"), Some(&1));
        assert_eq!(m.find("b.example.org"), Some(&2));
        // c is also matched by 2's wildcard, which comes first
        assert_eq!(m.find("c.example.org"), Some(&2));
        assert_eq!(m.find("q.example.com"), Some(&4));
        assert_eq!(m.find("qq.example.com"), None);
        assert_eq!(m.find("example.org"), None);
        assert_eq!(m.len(), 4);
    }
}
