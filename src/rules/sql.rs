//! The rule engine's SQL: `SELECT <fields> FROM <sources> [WHERE <condition>]`, parsed once
//! into a [`Statement`] and evaluated against an event's columns.
//!
//! Owns: the grammar EMQ X v3's rule engine accepts (fields: `*`, columns, nested paths such
//! as `payload.a.b` with the payload read as JSON, constants, arithmetic `+ - * / div mod`,
//! function calls, `AS` aliases, nested aliases; sources: quoted event names or topic
//! filters; conditions: `and`/`or`/`not`, `= != <> > < >= <=`, `=~` topic match, `in (...)`),
//! and its evaluation. Pure: no I/O, no clock; values are `serde_json::Value`s.
//! Must never: panic on any statement or any event (a type mismatch evaluates to `null`,
//! which no condition accepts).

use serde_json::{Map, Number, Value};

/// A parsed statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub fields: Vec<Field>,
    /// The names in `FROM`, unquoted: event names (`message.publish`, ...) or topic filters.
    pub from: Vec<String>,
    pub condition: Option<Expr>,
}

/// One item of `SELECT`.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// `*`: every column.
    All,
    /// An expression, and the path it is stored under (its alias, or its own name).
    Expr { expr: Expr, name: Vec<String> },
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Const(Value),
    /// A column or a path into one (`payload.a.b`).
    Column(Vec<String>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Vec<Expr>),
    Call(String, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `topic =~ 'filter'`: MQTT topic match.
    Match,
    Add,
    Sub,
    Mul,
    Div,
    IntDiv,
    Mod,
}

/// Why a statement was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError(pub String);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, SqlError> {
    Err(SqlError(message.into()))
}

// ---------------------------------------------------------------- tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    /// A single-quoted string (a constant).
    Str(String),
    /// A double-quoted string (an event name or topic filter in `FROM`; a constant elsewhere).
    Quoted(String),
    Num(f64, bool),
    Sym(&'static str),
}

fn tokens(sql: &str) -> Result<Vec<Tok>, SqlError> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'\'' || c == b'"' {
            let end = sql[i + 1..]
                .find(c as char)
                .ok_or_else(|| SqlError(format!("unterminated string at {i}")))?;
            let s = sql[i + 1..i + 1 + end].to_string();
            out.push(if c == b'\'' {
                Tok::Str(s)
            } else {
                Tok::Quoted(s)
            });
            i += end + 2;
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            let text = &sql[start..i];
            let n: f64 = text
                .parse()
                .map_err(|_| SqlError(format!("bad number {text}")))?;
            out.push(Tok::Num(n, !text.contains('.')));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$') {
                i += 1;
            }
            out.push(Tok::Word(sql[start..i].to_string()));
            continue;
        }
        let two = sql.get(i..i + 2).unwrap_or("");
        let sym = ["=~", "!=", "<>", "<=", ">="]
            .into_iter()
            .find(|s| *s == two)
            .or_else(|| {
                ["=", "<", ">", "+", "-", "*", "/", "(", ")", ",", "."]
                    .into_iter()
                    .find(|s| s.as_bytes()[0] == c)
            });
        match sym {
            Some(s) => {
                out.push(Tok::Sym(s));
                i += s.len();
            }
            None => return err(format!("unexpected character {:?}", c as char)),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- parser

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn keyword(&mut self, kw: &str) -> bool {
        match self.peek() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }
    fn sym(&mut self, s: &str) -> bool {
        match self.peek() {
            Some(Tok::Sym(x)) if *x == s => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }
    fn expect_sym(&mut self, s: &str) -> Result<(), SqlError> {
        if self.sym(s) {
            Ok(())
        } else {
            err(format!("expected {s:?} at token {}", self.at))
        }
    }

    fn statement(&mut self) -> Result<Statement, SqlError> {
        if !self.keyword("select") {
            return err("a statement starts with SELECT");
        }
        let mut fields = Vec::new();
        loop {
            fields.push(self.field()?);
            if !self.sym(",") {
                break;
            }
        }
        if !self.keyword("from") {
            return err("expected FROM");
        }
        let mut from = Vec::new();
        loop {
            match self.next() {
                Some(Tok::Quoted(s)) | Some(Tok::Str(s)) => from.push(s),
                _ => return err("FROM takes quoted event names or topic filters"),
            }
            if !self.sym(",") {
                break;
            }
        }
        let condition = if self.keyword("where") {
            Some(self.or()?)
        } else {
            None
        };
        if self.at < self.toks.len() {
            return err(format!("unexpected {:?}", self.toks[self.at]));
        }
        Ok(Statement {
            fields,
            from,
            condition,
        })
    }

    fn field(&mut self) -> Result<Field, SqlError> {
        if self.sym("*") {
            return Ok(Field::All);
        }
        let expr = self.additive()?;
        let name = if self.keyword("as") {
            self.path()?
        } else {
            match &expr {
                Expr::Column(path) => path.clone(),
                Expr::Call(name, _) => vec![name.clone()],
                Expr::Const(v) => vec![display(v)],
                _ => return err("an expression needs an alias (AS name)"),
            }
        };
        Ok(Field::Expr { expr, name })
    }

    fn path(&mut self) -> Result<Vec<String>, SqlError> {
        let mut path = Vec::new();
        loop {
            match self.next() {
                Some(Tok::Word(w)) => path.push(w),
                _ => return err("expected a name"),
            }
            if !self.sym(".") {
                return Ok(path);
            }
        }
    }

    fn or(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.and()?;
        while self.keyword("or") {
            l = Expr::Binary(BinaryOp::Or, Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.not()?;
        while self.keyword("and") {
            l = Expr::Binary(BinaryOp::And, Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }

    fn not(&mut self) -> Result<Expr, SqlError> {
        if self.keyword("not") {
            return Ok(Expr::Unary(UnaryOp::Not, Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, SqlError> {
        let l = self.additive()?;
        if self.keyword("in") {
            self.expect_sym("(")?;
            let mut items = Vec::new();
            if !self.sym(")") {
                loop {
                    items.push(self.additive()?);
                    if self.sym(")") {
                        break;
                    }
                    self.expect_sym(",")?;
                }
            }
            return Ok(Expr::In(Box::new(l), items));
        }
        let op = [
            ("=~", BinaryOp::Match),
            ("=", BinaryOp::Eq),
            ("!=", BinaryOp::Ne),
            ("<>", BinaryOp::Ne),
            ("<=", BinaryOp::Le),
            (">=", BinaryOp::Ge),
            ("<", BinaryOp::Lt),
            (">", BinaryOp::Gt),
        ]
        .into_iter()
        .find(|(s, _)| self.sym(s));
        match op {
            Some((_, op)) => Ok(Expr::Binary(op, Box::new(l), Box::new(self.additive()?))),
            None => Ok(l),
        }
    }

    fn additive(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.term()?;
        loop {
            let op = if self.sym("+") {
                BinaryOp::Add
            } else if self.sym("-") {
                BinaryOp::Sub
            } else {
                return Ok(l);
            };
            l = Expr::Binary(op, Box::new(l), Box::new(self.term()?));
        }
    }

    fn term(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.unary()?;
        loop {
            let op = if self.sym("*") {
                BinaryOp::Mul
            } else if self.sym("/") {
                BinaryOp::Div
            } else if self.keyword("div") {
                BinaryOp::IntDiv
            } else if self.keyword("mod") {
                BinaryOp::Mod
            } else {
                return Ok(l);
            };
            l = Expr::Binary(op, Box::new(l), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, SqlError> {
        if self.sym("-") {
            return Ok(Expr::Unary(UnaryOp::Neg, Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, SqlError> {
        match self.next() {
            Some(Tok::Num(n, int)) => Ok(Expr::Const(number(n, int))),
            Some(Tok::Str(s)) | Some(Tok::Quoted(s)) => Ok(Expr::Const(Value::String(s))),
            Some(Tok::Sym("(")) => {
                let e = self.or()?;
                self.expect_sym(")")?;
                Ok(e)
            }
            Some(Tok::Word(w)) => {
                if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false") {
                    return Ok(Expr::Const(Value::Bool(w.eq_ignore_ascii_case("true"))));
                }
                if self.sym("(") {
                    let mut args = Vec::new();
                    if !self.sym(")") {
                        loop {
                            args.push(self.or()?);
                            if self.sym(")") {
                                break;
                            }
                            self.expect_sym(",")?;
                        }
                    }
                    let name = w.to_ascii_lowercase();
                    if !FUNCTIONS.contains(&name.as_str()) {
                        return err(format!("Unknown Function: {w}"));
                    }
                    return Ok(Expr::Call(name, args));
                }
                let mut path = vec![w];
                while self.sym(".") {
                    match self.next() {
                        Some(Tok::Word(w)) => path.push(w),
                        Some(Tok::Num(n, true)) => path.push(format!("{n}")),
                        _ => return err("expected a name after '.'"),
                    }
                }
                Ok(Expr::Column(path))
            }
            other => err(format!("unexpected {other:?}")),
        }
    }
}

/// The functions a statement may call.
const FUNCTIONS: &[&str] = &[
    "lower",
    "upper",
    "trim",
    "ltrim",
    "rtrim",
    "reverse",
    "strlen",
    "substr",
    "abs",
    "ceil",
    "floor",
    "round",
    "sqrt",
    "power",
    "exp",
    "log",
    "log10",
    "log2",
    "fmod",
    "nth",
    "topic",
    "payload",
    "qos",
    "clientid",
    "username",
    "timestamp",
    "sha256",
    "base64_encode",
    "bitand",
    "bitor",
    "bitxor",
    "bitnot",
    "bitsl",
    "bitsr",
    "str",
    "int",
    "float",
];

fn number(n: f64, int: bool) -> Value {
    if int && n.abs() < 9.0e15 {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// Parses `sql`.
pub fn parse(sql: &str) -> Result<Statement, SqlError> {
    let toks = tokens(sql)?;
    Parser { toks, at: 0 }.statement()
}

// ---------------------------------------------------------------- evaluation

/// The columns of one event, and the payload read as JSON once, when first asked.
pub struct Env<'a> {
    pub columns: &'a Map<String, Value>,
    payload: std::cell::OnceCell<Value>,
}

impl<'a> Env<'a> {
    pub fn new(columns: &'a Map<String, Value>) -> Env<'a> {
        Env {
            columns,
            payload: std::cell::OnceCell::new(),
        }
    }

    /// The payload as JSON (`{}` when it is not JSON, as EMQ X reads it).
    fn payload_json(&self) -> &Value {
        self.payload.get_or_init(|| {
            let text = match self.columns.get("payload") {
                Some(Value::String(s)) => s.as_str(),
                _ => "",
            };
            serde_json::from_str(text).unwrap_or_else(|_| Value::Object(Map::new()))
        })
    }

    fn column(&self, path: &[String], selected: Option<&Map<String, Value>>) -> Value {
        let Some((first, rest)) = path.split_first() else {
            return Value::Null;
        };
        if first == "payload" && !rest.is_empty() {
            return walk(self.payload_json(), rest);
        }
        let root = self
            .columns
            .get(first)
            .or_else(|| selected.and_then(|s| s.get(first)));
        match root {
            Some(v) => walk(v, rest),
            None => Value::Null,
        }
    }
}

fn walk(v: &Value, path: &[String]) -> Value {
    let mut v = v;
    for key in path {
        v = match v {
            Value::Object(m) => match m.get(key) {
                Some(x) => x,
                None => return Value::Null,
            },
            Value::Array(a) => match key.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(x) => x,
                None => return Value::Null,
            },
            _ => return Value::Null,
        };
    }
    v.clone()
}

impl Statement {
    /// Runs the statement on one event: the selected map when the condition holds (or there
    /// is none), else `None`. The condition sees the columns and the selected aliases.
    pub fn run(&self, env: &Env) -> Option<Map<String, Value>> {
        let mut selected = Map::new();
        for f in &self.fields {
            match f {
                Field::All => {
                    for (k, v) in env.columns {
                        selected.insert(k.clone(), v.clone());
                    }
                }
                Field::Expr { expr, name } => {
                    let v = eval(expr, env, None);
                    insert_path(&mut selected, name, v);
                }
            }
        }
        match &self.condition {
            Some(c) if !truthy(&eval(c, env, Some(&selected))) => None,
            _ => Some(selected),
        }
    }

    /// The columns the statement reads that `known` does not name (aliases excepted): a rule
    /// referring to one is refused at creation ("Unknown Column: x").
    pub fn unknown_columns(&self, known: &[&str]) -> Vec<String> {
        let aliases: Vec<&str> = self
            .fields
            .iter()
            .filter_map(|f| match f {
                Field::Expr { name, .. } => name.first().map(String::as_str),
                Field::All => None,
            })
            .collect();
        let mut out = Vec::new();
        let mut check = |e: &Expr, allow_alias: bool| {
            visit_columns(e, &mut |path: &[String]| {
                let head = path[0].as_str();
                let allowed = known.contains(&head) || (allow_alias && aliases.contains(&head));
                if !allowed && !out.iter().any(|o: &String| o == head) {
                    out.push(head.to_string());
                }
            })
        };
        for f in &self.fields {
            if let Field::Expr { expr, .. } = f {
                check(expr, false);
            }
        }
        if let Some(c) = &self.condition {
            check(c, true);
        }
        out
    }
}

fn visit_columns(e: &Expr, f: &mut dyn FnMut(&[String])) {
    match e {
        Expr::Const(_) => {}
        Expr::Column(p) => f(p),
        Expr::Unary(_, x) => visit_columns(x, f),
        Expr::Binary(_, l, r) => {
            visit_columns(l, f);
            visit_columns(r, f);
        }
        Expr::In(x, items) => {
            visit_columns(x, f);
            items.iter().for_each(|i| visit_columns(i, f));
        }
        Expr::Call(_, args) => args.iter().for_each(|a| visit_columns(a, f)),
    }
}

fn insert_path(map: &mut Map<String, Value>, path: &[String], v: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert(last.clone(), v);
        }
        [first, rest @ ..] => {
            let child = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(m) = child {
                insert_path(m, rest, v);
            }
        }
    }
}

fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A number from a value: numbers, and strings that read as one (EMQ X coerces them).
fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn is_int(v: &Value) -> bool {
    matches!(v, Value::Number(n) if n.is_i64() || n.is_u64())
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, _) | (_, Value::Null) => None,
        _ => num(a)?.partial_cmp(&num(b)?),
    }
}

fn eval(e: &Expr, env: &Env, selected: Option<&Map<String, Value>>) -> Value {
    match e {
        Expr::Const(v) => v.clone(),
        Expr::Column(path) => env.column(path, selected),
        Expr::Unary(UnaryOp::Not, x) => match eval(x, env, selected) {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Null,
        },
        Expr::Unary(UnaryOp::Neg, x) => {
            let v = eval(x, env, selected);
            match num(&v) {
                Some(n) => number(-n, is_int(&v)),
                None => Value::Null,
            }
        }
        Expr::In(x, items) => {
            let v = eval(x, env, selected);
            let found = items
                .iter()
                .any(|i| compare(&v, &eval(i, env, selected)) == Some(std::cmp::Ordering::Equal));
            Value::Bool(found)
        }
        Expr::Binary(op, l, r) => {
            let a = eval(l, env, selected);
            // `and`/`or` need the right side only when the left does not decide.
            match op {
                BinaryOp::And if !truthy(&a) => return Value::Bool(false),
                BinaryOp::Or if truthy(&a) => return Value::Bool(true),
                _ => {}
            }
            let b = eval(r, env, selected);
            binary(*op, &a, &b)
        }
        Expr::Call(name, args) => {
            let args: Vec<Value> = args.iter().map(|a| eval(a, env, selected)).collect();
            call(name, &args, env)
        }
    }
}

fn binary(op: BinaryOp, a: &Value, b: &Value) -> Value {
    use std::cmp::Ordering::*;
    let ord = || compare(a, b);
    let arith = |f: fn(f64, f64) -> f64| match (num(a), num(b)) {
        (Some(x), Some(y)) => number(f(x, y), is_int(a) && is_int(b)),
        _ => Value::Null,
    };
    match op {
        BinaryOp::Or | BinaryOp::And => Value::Bool(truthy(b)),
        BinaryOp::Eq => Value::Bool(ord() == Some(Equal)),
        BinaryOp::Ne => Value::Bool(ord().is_some_and(|o| o != Equal)),
        BinaryOp::Lt => Value::Bool(ord() == Some(Less)),
        BinaryOp::Le => Value::Bool(matches!(ord(), Some(Less | Equal))),
        BinaryOp::Gt => Value::Bool(ord() == Some(Greater)),
        BinaryOp::Ge => Value::Bool(matches!(ord(), Some(Greater | Equal))),
        BinaryOp::Match => match (a, b) {
            (Value::String(topic), Value::String(filter)) => {
                Value::Bool(crate::topic::matches(filter, topic))
            }
            _ => Value::Bool(false),
        },
        BinaryOp::Add => match (a, b) {
            (Value::String(x), Value::String(y)) if num(a).is_none() || num(b).is_none() => {
                Value::String(format!("{x}{y}"))
            }
            _ => arith(|x, y| x + y),
        },
        BinaryOp::Sub => arith(|x, y| x - y),
        BinaryOp::Mul => arith(|x, y| x * y),
        BinaryOp::Div => match (num(a), num(b)) {
            (Some(x), Some(y)) if y != 0.0 => number(x / y, false),
            _ => Value::Null,
        },
        BinaryOp::IntDiv | BinaryOp::Mod => match (num(a), num(b)) {
            (Some(x), Some(y)) if y != 0.0 && x.fract() == 0.0 && y.fract() == 0.0 => {
                let (x, y) = (x as i64, y as i64);
                let r = if op == BinaryOp::IntDiv {
                    x.checked_div(y)
                } else {
                    x.checked_rem(y)
                };
                r.map_or(Value::Null, |r| Value::Number(r.into()))
            }
            _ => Value::Null,
        },
    }
}

fn call(name: &str, args: &[Value], env: &Env) -> Value {
    let s = |i: usize| args.get(i).map(display).unwrap_or_default();
    let n = |i: usize| args.get(i).and_then(num);
    let float = |f: fn(f64) -> f64| n(0).map_or(Value::Null, |x| number(f(x), false));
    let bits = |f: fn(i64, i64) -> i64| match (n(0), n(1)) {
        (Some(x), Some(y)) => Value::Number(f(x as i64, y as i64).into()),
        _ => Value::Null,
    };
    match name {
        "lower" => Value::String(s(0).to_lowercase()),
        "upper" => Value::String(s(0).to_uppercase()),
        "trim" => Value::String(s(0).trim().to_string()),
        "ltrim" => Value::String(s(0).trim_start().to_string()),
        "rtrim" => Value::String(s(0).trim_end().to_string()),
        "reverse" => Value::String(s(0).chars().rev().collect()),
        "strlen" => Value::Number(s(0).chars().count().into()),
        "substr" => {
            let text: Vec<char> = s(0).chars().collect();
            let start = n(1).unwrap_or(0.0).max(0.0) as usize;
            let len = n(2).map_or(text.len(), |l| l.max(0.0) as usize);
            Value::String(text.iter().skip(start).take(len).collect())
        }
        "str" => Value::String(s(0)),
        "int" => n(0).map_or(Value::Null, |x| Value::Number((x.trunc() as i64).into())),
        "float" => float(|x| x),
        "abs" => match args.first() {
            Some(v) => n(0).map_or(Value::Null, |x| number(x.abs(), is_int(v))),
            None => Value::Null,
        },
        "ceil" => n(0).map_or(Value::Null, |x| number(x.ceil(), true)),
        "floor" => n(0).map_or(Value::Null, |x| number(x.floor(), true)),
        "round" => n(0).map_or(Value::Null, |x| number(x.round(), true)),
        "sqrt" => float(f64::sqrt),
        "exp" => float(f64::exp),
        "log" => float(f64::ln),
        "log10" => float(f64::log10),
        "log2" => float(f64::log2),
        "power" => match (n(0), n(1)) {
            (Some(x), Some(y)) => number(x.powf(y), false),
            _ => Value::Null,
        },
        "fmod" => match (n(0), n(1)) {
            (Some(x), Some(y)) if y != 0.0 => number(x % y, false),
            _ => Value::Null,
        },
        "bitand" => bits(|x, y| x & y),
        "bitor" => bits(|x, y| x | y),
        "bitxor" => bits(|x, y| x ^ y),
        "bitsl" => bits(|x, y| x.checked_shl(y as u32).unwrap_or(0)),
        "bitsr" => bits(|x, y| x.checked_shr(y as u32).unwrap_or(0)),
        "bitnot" => n(0).map_or(Value::Null, |x| Value::Number((!(x as i64)).into())),
        "nth" => match (n(0), args.get(1)) {
            (Some(i), Some(Value::Array(a))) if i >= 1.0 => {
                a.get(i as usize - 1).cloned().unwrap_or(Value::Null)
            }
            _ => Value::Null,
        },
        "topic" => {
            let topic = env.column(&["topic".to_string()], None);
            match (n(0), topic) {
                (None, t) => t,
                (Some(i), Value::String(t)) if i >= 1.0 => t
                    .split('/')
                    .nth(i as usize - 1)
                    .map_or(Value::Null, |l| Value::String(l.to_string())),
                _ => Value::Null,
            }
        }
        "payload" => match args.first() {
            None => env.column(&["payload".to_string()], None),
            Some(Value::String(path)) => {
                let path: Vec<String> = path.split('.').map(str::to_string).collect();
                walk(env.payload_json(), &path)
            }
            _ => Value::Null,
        },
        "qos" | "clientid" | "username" | "timestamp" => {
            let column = if name == "clientid" {
                "client_id"
            } else {
                name
            };
            env.column(&[column.to_string()], None)
        }
        "sha256" => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(s(0).as_bytes());
            Value::String(digest.iter().map(|b| format!("{b:02x}")).collect())
        }
        "base64_encode" => Value::String(base64_encode(s(0).as_bytes())),
        _ => Value::Null,
    }
}

/// Standard base64 with padding.
fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn columns(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn run(sql: &str, cols: Value) -> Option<Value> {
        let st = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let cols = columns(cols);
        st.run(&Env::new(&cols)).map(Value::Object)
    }

    fn publish(topic: &str, payload: &str) -> Value {
        json!({"client_id": "c1", "username": null, "topic": topic, "qos": 1,
               "payload": payload, "event": "message.publish", "timestamp": 1000})
    }

    #[test]
    fn select_fields_paths_aliases_and_star() {
        let got = run(
            "SELECT payload.temp AS t, payload.loc.city AS place.city, client_id, 2 + 3 * 4 AS n \
             FROM \"t/#\"",
            publish("t/1", r#"{"temp": 21.5, "loc": {"city": "Oslo"}}"#),
        );
        assert_eq!(
            got,
            Some(json!({"t": 21.5, "place": {"city": "Oslo"}, "client_id": "c1", "n": 14}))
        );
        let all = run("SELECT * FROM \"message.publish\"", publish("a", "x")).unwrap();
        assert_eq!(all["topic"], "a");
        assert_eq!(all["qos"], 1);
    }

    #[test]
    fn where_compares_coerces_matches_topics_and_lists() {
        let m = publish("sensors/3/temp", r#"{"temp": "30", "id": 7}"#);
        let yes = |w: &str| run(&format!("SELECT * FROM \"#\" WHERE {w}"), m.clone()).is_some();
        assert!(
            yes("payload.temp > 25"),
            "a numeric string is compared as a number"
        );
        assert!(!yes("payload.temp > 35"));
        assert!(yes("topic =~ 'sensors/+/temp' and qos = 1"));
        assert!(!yes("topic =~ 'sensors/+/humidity'"));
        assert!(yes("payload.id in (1, 7, 9)"));
        assert!(yes("not payload.id in (1, 2)"));
        assert!(yes("payload.missing = 1 or client_id = 'c1'"));
        assert!(!yes("payload.missing > 1"), "null satisfies no comparison");
        assert!(yes("client_id <> 'x' and qos != 2"));
        // The condition sees the aliases of SELECT.
        let hit = run(
            "SELECT payload.id * 10 AS big FROM \"#\" WHERE big >= 70",
            m.clone(),
        );
        assert_eq!(hit, Some(json!({"big": 70})));
    }

    #[test]
    fn functions_of_the_library() {
        let m = publish("a/b/c", r#"{"name": "  Bob ", "n": -4, "list": [1, 2, 3]}"#);
        let got = run(
            "SELECT upper(trim(payload.name)) AS u, abs(payload.n) AS a, topic(2) AS level, \
             strlen('héllo') AS len, substr('abcdef', 1, 3) AS sub, nth(2, payload.list) AS second, \
             7 div 2 AS q, 7 mod 2 AS r, power(2, 10) AS p, base64_encode('hi') AS b64, \
             sha256('abc') AS h FROM \"#\"",
            m,
        )
        .unwrap();
        assert_eq!(got["u"], "BOB");
        assert_eq!(got["a"], 4);
        assert_eq!(got["level"], "b");
        assert_eq!(got["len"], 5);
        assert_eq!(got["sub"], "bcd");
        assert_eq!(got["second"], 2);
        assert_eq!((got["q"].clone(), got["r"].clone()), (json!(3), json!(1)));
        assert_eq!(got["p"], 1024.0);
        assert_eq!(got["b64"], "aGk=");
        assert_eq!(
            got["h"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bad_statements_are_refused_with_a_reason_and_nothing_panics() {
        for bad in [
            "",
            "SELECT",
            "SELECT * FROM",
            "SELECT * FROM t",
            "SELECT a + FROM \"t\"",
            "SELECT * FROM \"t\" WHERE",
            "SELECT * FROM \"t\" WHERE a = 'open",
            "SELECT nosuchfn(1) FROM \"t\"",
            "SELECT 1 + 2 FROM \"t\"",
            "UPDATE x",
            "SELECT * FROM \"t\" garbage",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        // Division by zero, wrong types, deep paths into nothing: null, never a panic.
        let got = run(
            "SELECT 1 / 0 AS d, 'a' - 1 AS s, payload.a.b.c AS p, 5 mod 0 AS m FROM \"#\"",
            publish("t", "not json"),
        )
        .unwrap();
        assert!(got.as_object().unwrap().values().all(Value::is_null));
    }

    #[test]
    fn unknown_columns_are_named_and_aliases_are_allowed_in_where() {
        let known = ["client_id", "topic", "payload", "qos"];
        let st = parse("SELECT payload.x AS x, foo FROM \"t\" WHERE x > 1 and bar = 2").unwrap();
        assert_eq!(st.unknown_columns(&known), vec!["foo", "bar"]);
        let ok = parse("SELECT topic FROM \"message.publish\" WHERE qos = 1").unwrap();
        assert!(ok.unknown_columns(&known).is_empty());
        assert_eq!(ok.from, vec!["message.publish"]);
    }
}
