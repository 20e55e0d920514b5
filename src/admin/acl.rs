//! Authorization: EMQ X's `acl.conf` rules and the decision whether a client may publish to a
//! topic or subscribe to a filter.
//!
//! Owns: the parser of the rule file (Erlang terms, the subset EMQ X documents:
//! `{allow|deny, Who, publish|subscribe|pubsub, [Topics]}.` and `{allow|deny, all}.`, `Who`
//! one of `all`, `{user, "U"}`, `{client, "C"}`, `{ipaddr, "CIDR"}`, `{'and', [..]}`,
//! `{'or', [..]}`; a topic a filter string, `{eq, "T"}` for an exact match, `%u` / `%c`
//! placeholders) and the evaluation: the first rule whose client, access and topic match
//! decides; none matching gives `acl.nomatch`. Pure: the shard that asks passes the client's
//! identity. Must never: read files (the management thread reads `acl.file`), or allow what
//! a matching deny rule denies.

use std::net::IpAddr;

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Publish,
    Subscribe,
}

/// Who a rule is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    All,
    User(String),
    Client(String),
    /// An address and prefix length (a plain address is a /32 or /128).
    IpAddr(IpAddr, u8),
    And(Vec<Who>),
    Or(Vec<Who>),
}

/// A topic of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTopic {
    /// A filter the client's topic must match (`%u` / `%c` replaced first).
    Filter(String),
    /// `{eq, T}`: the client's topic or filter must be exactly this.
    Eq(String),
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub who: Who,
    /// `None`: both (`pubsub`, or a two-element rule).
    pub access: Option<Access>,
    /// Empty: every topic (a two-element rule).
    pub topics: Vec<RuleTopic>,
}

/// The client a decision is about.
#[derive(Debug, Clone, Copy)]
pub struct ClientRef<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub ip: Option<IpAddr>,
}

/// The rules of an ACL file, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub rules: Vec<Rule>,
}

impl Acl {
    /// The decision of the first rule that matches: `Some(true)` allow, `Some(false)` deny,
    /// `None` when no rule matches (the caller applies `acl.nomatch`).
    pub fn check(&self, client: ClientRef<'_>, access: Access, topic: &str) -> Option<bool> {
        self.rules
            .iter()
            .find(|r| {
                r.access.is_none_or(|a| a == access)
                    && who_matches(&r.who, client)
                    && (r.topics.is_empty()
                        || r.topics.iter().any(|t| topic_matches(t, client, topic)))
            })
            .map(|r| r.allow)
    }

    /// Parses the text of an `acl.conf`; the error names the line.
    pub fn parse(text: &str) -> Result<Acl, String> {
        let tokens = tokenize(text)?;
        let mut p = Parser { tokens, pos: 0 };
        let mut rules = Vec::new();
        while !p.done() {
            rules.push(p.rule()?);
            p.expect(&Tok::Dot)?;
        }
        Ok(Acl { rules })
    }
}

fn who_matches(who: &Who, c: ClientRef<'_>) -> bool {
    match who {
        Who::All => true,
        Who::User(u) => c.username == Some(u.as_str()),
        Who::Client(id) => c.client_id == id,
        Who::IpAddr(net, len) => c.ip.is_some_and(|ip| in_network(ip, *net, *len)),
        Who::And(all) => all.iter().all(|w| who_matches(w, c)),
        Who::Or(any) => any.iter().any(|w| who_matches(w, c)),
    }
}

fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len.min(32))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len.min(128))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn topic_matches(rule: &RuleTopic, c: ClientRef<'_>, topic: &str) -> bool {
    match rule {
        RuleTopic::Eq(t) => t == topic,
        RuleTopic::Filter(f) => {
            let filter = if f.contains('%') {
                // A placeholder for an identity the client does not have matches nothing.
                if f.contains("%u") && c.username.is_none() {
                    return false;
                }
                f.replace("%u", c.username.unwrap_or(""))
                    .replace("%c", c.client_id)
            } else {
                f.clone()
            };
            crate::topic::matches(&filter, topic)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Open,
    Close,
    ListOpen,
    ListClose,
    Comma,
    Dot,
    Atom(String),
    Str(String),
}

/// Tokens with their line numbers.
fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '%' => {
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
            }
            '{' => out.push((Tok::Open, line)),
            '}' => out.push((Tok::Close, line)),
            '[' => out.push((Tok::ListOpen, line)),
            ']' => out.push((Tok::ListClose, line)),
            ',' => out.push((Tok::Comma, line)),
            '.' => out.push((Tok::Dot, line)),
            '"' | '\'' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some(e) if e == c => break,
                        Some('\\') => s.extend(chars.next()),
                        Some('\n') => return Err(format!("line {line}: unterminated string")),
                        Some(ch) => s.push(ch),
                        None => return Err(format!("line {line}: unterminated string")),
                    }
                }
                out.push((if c == '"' { Tok::Str(s) } else { Tok::Atom(s) }, line));
            }
            c if c.is_ascii_alphabetic() => {
                let mut s = String::from(c);
                while chars
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    s.extend(chars.next());
                }
                out.push((Tok::Atom(s), line));
            }
            other => return Err(format!("line {line}: unexpected {other:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
}

impl Parser {
    fn done(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn line(&self) -> usize {
        self.tokens
            .get(self.pos)
            .or(self.tokens.last())
            .map_or(1, |(_, l)| *l)
    }

    fn next(&mut self) -> Result<Tok, String> {
        let t = self
            .tokens
            .get(self.pos)
            .cloned()
            .ok_or_else(|| format!("line {}: unexpected end of file", self.line()))?;
        self.pos += 1;
        Ok(t.0)
    }

    fn expect(&mut self, want: &Tok) -> Result<(), String> {
        let line = self.line();
        match self.next()? {
            t if t == *want => Ok(()),
            t => Err(format!("line {line}: expected {want:?}, found {t:?}")),
        }
    }

    fn atom(&mut self) -> Result<String, String> {
        let line = self.line();
        match self.next()? {
            Tok::Atom(a) => Ok(a),
            t => Err(format!("line {line}: expected a word, found {t:?}")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let line = self.line();
        match self.next()? {
            Tok::Str(s) => Ok(s),
            t => Err(format!("line {line}: expected a \"string\", found {t:?}")),
        }
    }

    fn rule(&mut self) -> Result<Rule, String> {
        let line = self.line();
        self.expect(&Tok::Open)?;
        let allow = match self.atom()?.as_str() {
            "allow" => true,
            "deny" => false,
            other => {
                return Err(format!(
                    "line {line}: expected allow or deny, found {other}"
                ))
            }
        };
        self.expect(&Tok::Comma)?;
        let who = self.who()?;
        if self.tokens.get(self.pos).map(|t| &t.0) == Some(&Tok::Close) {
            self.pos += 1;
            return Ok(Rule {
                allow,
                who,
                access: None,
                topics: Vec::new(),
            });
        }
        self.expect(&Tok::Comma)?;
        let access = match self.atom()?.as_str() {
            "publish" => Some(Access::Publish),
            "subscribe" => Some(Access::Subscribe),
            "pubsub" => None,
            other => {
                return Err(format!(
                    "line {line}: expected publish, subscribe or pubsub, found {other}"
                ))
            }
        };
        self.expect(&Tok::Comma)?;
        self.expect(&Tok::ListOpen)?;
        let mut topics = Vec::new();
        loop {
            let line = self.line();
            match self.next()? {
                Tok::Str(s) => topics.push(RuleTopic::Filter(s)),
                Tok::Open => {
                    if self.atom()? != "eq" {
                        return Err(format!("line {line}: expected {{eq, \"topic\"}}"));
                    }
                    self.expect(&Tok::Comma)?;
                    topics.push(RuleTopic::Eq(self.string()?));
                    self.expect(&Tok::Close)?;
                }
                Tok::ListClose if topics.is_empty() => break,
                t => return Err(format!("line {line}: expected a topic, found {t:?}")),
            }
            match self.next()? {
                Tok::Comma => {}
                Tok::ListClose => break,
                t => return Err(format!("line {line}: expected , or ], found {t:?}")),
            }
        }
        self.expect(&Tok::Close)?;
        Ok(Rule {
            allow,
            who,
            access,
            topics,
        })
    }

    fn who(&mut self) -> Result<Who, String> {
        let line = self.line();
        match self.next()? {
            Tok::Atom(a) if a == "all" => Ok(Who::All),
            Tok::Open => {
                let kind = self.atom()?;
                self.expect(&Tok::Comma)?;
                let who = match kind.as_str() {
                    "user" => Who::User(self.string()?),
                    "client" => Who::Client(self.string()?),
                    "ipaddr" => {
                        let text = self.string()?;
                        let (addr, len) = match text.split_once('/') {
                            Some((a, l)) => (a, Some(l)),
                            None => (text.as_str(), None),
                        };
                        let ip: IpAddr = addr
                            .parse()
                            .map_err(|_| format!("line {line}: {text:?} is not an IP address"))?;
                        let max = if ip.is_ipv4() { 32 } else { 128 };
                        let len = match len {
                            None => max,
                            Some(l) => l
                                .parse::<u8>()
                                .ok()
                                .filter(|l| *l <= max)
                                .ok_or_else(|| format!("line {line}: bad prefix in {text:?}"))?,
                        };
                        Who::IpAddr(ip, len)
                    }
                    "and" | "or" => {
                        self.expect(&Tok::ListOpen)?;
                        let mut all = vec![self.who()?];
                        loop {
                            match self.next()? {
                                Tok::Comma => all.push(self.who()?),
                                Tok::ListClose => break,
                                t => {
                                    return Err(format!(
                                        "line {line}: expected , or ], found {t:?}"
                                    ))
                                }
                            }
                        }
                        if kind == "and" {
                            Who::And(all)
                        } else {
                            Who::Or(all)
                        }
                    }
                    other => return Err(format!("line {line}: unknown client selector {other}")),
                };
                self.expect(&Tok::Close)?;
                Ok(who)
            }
            t => Err(format!("line {line}: expected all or {{...}}, found {t:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMQX_DEFAULT: &str = r##"
%% EMQ X's shipped acl.conf
{allow, {user, "dashboard"}, subscribe, ["$SYS/#"]}.
{allow, {ipaddr, "127.0.0.1"}, pubsub, ["$SYS/#", "#"]}.
{deny, all, subscribe, ["$SYS/#", {eq, "#"}]}.
{allow, all}.
"##;

    fn client<'a>(id: &'a str, user: Option<&'a str>, ip: &str) -> ClientRef<'a> {
        ClientRef {
            client_id: id,
            username: user,
            ip: Some(ip.parse().unwrap()),
        }
    }

    #[test]
    fn emqx_default_file_parses_and_decides_as_emqx_does() {
        let acl = Acl::parse(EMQX_DEFAULT).unwrap();
        assert_eq!(acl.rules.len(), 4);
        let remote = client("c", Some("bob"), "10.0.0.9");
        let local = client("c", None, "127.0.0.1");
        let dash = client("d", Some("dashboard"), "10.0.0.9");
        use Access::*;
        assert_eq!(acl.check(remote, Subscribe, "$SYS/brokers"), Some(false));
        assert_eq!(
            acl.check(remote, Subscribe, "#"),
            Some(false),
            "{{eq, \"#\"}}"
        );
        assert_eq!(acl.check(remote, Subscribe, "a/#"), Some(true));
        assert_eq!(
            acl.check(remote, Publish, "$SYS/x"),
            Some(true),
            "deny is subscribe only"
        );
        assert_eq!(acl.check(local, Subscribe, "#"), Some(true));
        assert_eq!(
            acl.check(dash, Subscribe, "$SYS/brokers/+/clients"),
            Some(true)
        );
    }

    #[test]
    fn placeholders_networks_and_combinations() {
        let acl = Acl::parse(
            r#"{allow, {'and', [{ipaddr, "192.168.0.0/16"}, {user, "u1"}]}, publish, ["d/%u/#"]}.
               {allow, {'or', [{client, "c1"}, {client, "c2"}]}, subscribe, ["own/%c"]}.
               {deny, all}."#,
        )
        .unwrap();
        let u1 = client("x", Some("u1"), "192.168.4.2");
        assert_eq!(acl.check(u1, Access::Publish, "d/u1/t"), Some(true));
        assert_eq!(acl.check(u1, Access::Publish, "d/u2/t"), Some(false));
        let outside = client("x", Some("u1"), "10.1.1.1");
        assert_eq!(acl.check(outside, Access::Publish, "d/u1/t"), Some(false));
        let c2 = client("c2", None, "10.1.1.1");
        assert_eq!(acl.check(c2, Access::Subscribe, "own/c2"), Some(true));
        assert_eq!(acl.check(c2, Access::Subscribe, "own/c1"), Some(false));
        // No username: a %u rule matches nothing.
        let anon = client("x", None, "192.168.1.1");
        assert_eq!(acl.check(anon, Access::Publish, "d//t"), Some(false));
    }

    #[test]
    fn no_rule_matching_is_no_decision_and_bad_files_name_their_line() {
        let acl = Acl::parse(r#"{deny, all, subscribe, ["test/nosubscribe"]}."#).unwrap();
        let c = client("c", None, "127.0.0.1");
        assert_eq!(
            acl.check(c, Access::Subscribe, "test/nosubscribe"),
            Some(false)
        );
        assert_eq!(acl.check(c, Access::Subscribe, "test/other"), None);
        assert_eq!(acl.check(c, Access::Publish, "test/nosubscribe"), None);
        assert!(Acl::parse("").unwrap().rules.is_empty());
        for (bad, line) in [
            ("{allow, all}.\n{maybe, all}.", "line 2"),
            ("{allow, all}", "line 1"),
            (
                "{allow, {ipaddr, \"300.1.1.1\"}, publish, [\"a\"]}.",
                "line 1",
            ),
            ("\n\n{allow, all, publish, [\"a\"}.", "line 3"),
        ] {
            let err = Acl::parse(bad).unwrap_err();
            assert!(err.contains(line), "{bad:?}: {err}");
        }
    }
}
