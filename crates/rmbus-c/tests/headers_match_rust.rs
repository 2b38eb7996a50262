//! The header files are written by hand; this test reads them and the
//! Rust sources and checks that they agree: every function declared is
//! exported with the same parameter and return types (as C spells them),
//! every exported function is declared, the callback types and
//! `rmbus_return` have the same fields, and the constants have the same
//! values.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn read(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// C text without comments, preprocessor lines and `extern "C"` braces.
fn c_code(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("closed comment") + start + 2;
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.lines()
        .filter(|l| {
            let t = l.trim();
            !t.starts_with('#') && t != "extern \"C\" {" && t != "}"
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Splits at commas outside parentheses and angle brackets.
fn split_top(s: &str) -> Vec<String> {
    let (mut parts, mut depth, mut cur) = (Vec::new(), 0i32, String::new());
    for c in s.chars() {
        match c {
            '(' | '<' => depth += 1,
            ')' | '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(cur.trim().to_owned());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        parts.push(cur.trim().to_owned());
    }
    parts
}

/// A C type in one spelling: tokens separated by one space.
fn c_tokens(s: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if c == '*' {
                tokens.push("*".into());
            }
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

/// A C parameter's type without its name (and without a top-level const
/// on a value).
fn c_param(p: &str) -> String {
    let p = p.trim();
    if p == "..." || p == "void" {
        return p.to_owned();
    }
    if let Some(open) = p.find("(*") {
        // ret (*name)(params)
        let ret = c_tokens(&p[..open]).join(" ");
        let after = &p[open..];
        let params_at = after[1..].find('(').expect("function pointer parameters") + 1;
        let inner = &after[params_at + 1..after.len() - 1];
        return format!("{ret} (*)({})", c_params(inner).join(", "));
    }
    let mut tokens = c_tokens(p);
    if tokens.len() > 1 && tokens.last().is_some_and(|t| t != "*") {
        tokens.pop();
    }
    if !tokens.contains(&"*".to_string()) && tokens.first().is_some_and(|t| t == "const") {
        tokens.remove(0);
    }
    tokens.join(" ")
}

fn c_params(s: &str) -> Vec<String> {
    let s = s.trim();
    if s.is_empty() || s == "void" {
        return Vec::new();
    }
    split_top(s).iter().map(|p| c_param(p)).collect()
}

/// `name -> (return type, parameter types)` for each C function declared,
/// and each function-pointer typedef.
type Signatures = BTreeMap<String, (String, Vec<String>)>;

fn c_signatures(code: &str) -> (Signatures, Signatures) {
    let mut functions = Signatures::new();
    let mut typedefs = Signatures::new();
    // Leave out enum and struct bodies.
    let mut flat = String::new();
    let mut depth = 0;
    for c in code.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ if depth == 0 => flat.push(c),
            _ => {}
        }
    }
    for stmt in flat.split(';') {
        let stmt = stmt.split_whitespace().collect::<Vec<_>>().join(" ");
        if !stmt.contains('(') {
            continue;
        }
        if let Some(def) = stmt.strip_prefix("typedef ") {
            // typedef ret (*name)(params)
            let open = def.find("(*").expect("a function pointer typedef");
            let close = def[open..].find(')').unwrap() + open;
            let name = def[open + 2..close].trim().to_owned();
            let ret = c_tokens(&def[..open]).join(" ");
            let params = &def[close + 1..];
            let params = &params[params.find('(').unwrap() + 1..params.rfind(')').unwrap()];
            typedefs.insert(name, (ret, c_params(params)));
            continue;
        }
        let open = stmt.find('(').unwrap();
        let head = c_tokens(&stmt[..open]);
        let name = head.last().unwrap().clone();
        let ret = head[..head.len() - 1].join(" ");
        let params = &stmt[open + 1..stmt.rfind(')').unwrap()];
        functions.insert(name, (ret, c_params(params)));
    }
    (functions, typedefs)
}

/// A Rust FFI type as C spells it.
fn rust_type(t: &str, aliases: &BTreeMap<String, String>) -> String {
    let t = t.trim();
    if let Some(inner) = t.strip_prefix("Option<").and_then(|s| s.strip_suffix('>')) {
        return aliases
            .get(inner)
            .unwrap_or_else(|| panic!("no C name for the callback type {inner}"))
            .clone();
    }
    if let Some(inner) = t.strip_prefix("*mut ") {
        return format!("{} *", rust_type(inner, aliases));
    }
    if let Some(inner) = t.strip_prefix("*const ") {
        return format!("const {} *", rust_type(inner, aliases));
    }
    match t {
        "()" => "void",
        "c_char" => "char",
        "c_int" => "int",
        "c_long" => "long",
        "c_void" => "void",
        "c_double" => "double",
        "u32" => "uint32_t",
        "u64" => "uint64_t",
        "i64" => "int64_t",
        "libc::timeval" => "struct timeval",
        "Mbus" => "struct mbus",
        "MbusParser" => "struct mbus_parser",
        "RmbusEntity" => "rmbus_entity",
        "RmbusReturn" => "rmbus_return",
        other => panic!("no C spelling for the Rust type {other}"),
    }
    .to_owned()
}

/// C spells `const char *` and `char const *` alike; ours write the first.
fn canon(c: &str) -> String {
    c_tokens(c).join(" ").replace("( * )", "(*)")
}

/// The parameter list and return type of a Rust `fn(...) -> R` text.
fn rust_fn(params_and_ret: &str, aliases: &BTreeMap<String, String>) -> (String, Vec<String>) {
    let close = {
        let mut depth = 0;
        let mut at = 0;
        for (i, c) in params_and_ret.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        at = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        at
    };
    let params = &params_and_ret[1..close];
    let after = params_and_ret[close + 1..].trim();
    let ret = after
        .strip_prefix("->")
        .map(|r| {
            r.split(['{', ';'])
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| "()".into());
    let params = split_top(params)
        .iter()
        .map(|p| {
            let ty = p.split_once(':').expect("name: Type").1;
            canon(&rust_type(ty, aliases))
        })
        .collect();
    (canon(&rust_type(&ret, aliases)), params)
}

/// The Rust sources' exported functions, callback aliases, `rmbus_return`
/// fields and constants.
struct Rust {
    functions: Signatures,
    callbacks: Signatures,
    return_fields: Vec<(String, String)>,
    constants: BTreeMap<String, i64>,
}

fn rust_side() -> Rust {
    let sources = ["src/ucl.rs", "src/parser.rs", "src/native.rs"]
        .map(read)
        .join("\n");
    let code: Vec<&str> = sources
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect();
    let text = code
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let c_names: BTreeMap<&str, &str> = [
        ("CommandCb", "rmbus_command_cb"),
        ("PeerCb", "rmbus_peer_cb"),
        ("OutcomeCb", "rmbus_outcome_cb"),
        ("ReturnCb", "rmbus_return_cb"),
        ("RequestCb", "rmbus_request_cb"),
    ]
    .into();
    // Callback aliases: `pub type X = unsafe extern "C" fn(...)...;`
    let mut aliases = BTreeMap::new();
    let mut raw_callbacks = Vec::new();
    for part in text.split("pub type ").skip(1) {
        let (name, rest) = part.split_once(" = ").unwrap();
        let Some(sig) = rest.strip_prefix("unsafe extern \"C\" fn") else {
            continue;
        };
        let sig = &sig[..sig.find(';').unwrap()];
        raw_callbacks.push((name.to_owned(), sig.to_owned()));
        aliases.insert(
            name.to_owned(),
            c_names.get(name).map_or(String::new(), |c| c.to_string()),
        );
    }
    let mut callbacks = Signatures::new();
    for (name, sig) in &raw_callbacks {
        let (ret, params) = rust_fn(sig, &aliases);
        if let Some(c) = c_names.get(name.as_str()) {
            callbacks.insert(c.to_string(), (ret, params));
        } else {
            // UCL's handlers are written out in the prototypes.
            aliases.insert(name.clone(), format!("{ret} (*)({})", params.join(", ")));
        }
    }
    let mut functions = Signatures::new();
    for (at, _) in text.match_indices("extern \"C\" fn ") {
        let part = &text[at + "extern \"C\" fn ".len()..];
        let open = part.find('(').unwrap();
        let name = part[..open].trim().to_owned();
        // Exported only with #[no_mangle] among its attributes.
        let mut from = at.saturating_sub(120);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        let before = &text[from..at];
        assert!(
            before.contains("#[no_mangle]"),
            "{name} is an extern \"C\" fn without #[no_mangle]: C cannot find it"
        );
        functions.insert(name, rust_fn(&part[open..], &aliases));
    }
    let body = text.split("pub struct RmbusReturn {").nth(1).unwrap();
    let body = &body[..body.find('}').unwrap()];
    let return_fields = body
        .split(',')
        .filter_map(|f| {
            let f = f.trim().strip_prefix("pub ")?;
            let (name, ty) = f.split_once(':')?;
            Some((name.trim().to_owned(), canon(&rust_type(ty, &aliases))))
        })
        .collect();
    let mut constants = BTreeMap::new();
    for part in text.split("pub const ").skip(1) {
        let (name, rest) = part.split_once(':').unwrap();
        if let Some(v) = rest.split_once('=').and_then(|(_, v)| v.split(';').next()) {
            if let Ok(n) = v.trim().parse() {
                constants.insert(name.trim().to_owned(), n);
            }
        }
    }
    Rust {
        functions,
        callbacks,
        return_fields,
        constants,
    }
}

#[test]
fn every_declared_function_is_exported_with_the_same_types_and_back() {
    let rust = rust_side();
    let mut declared = Signatures::new();
    let mut typedefs = Signatures::new();
    for h in ["include/mbus.h", "include/mbus_parser.h", "include/rmbus.h"] {
        let (f, t) = c_signatures(&c_code(&read(h)));
        declared.extend(f);
        typedefs.extend(t);
    }
    let canon_sig =
        |(r, p): &(String, Vec<String>)| (canon(r), p.iter().map(|x| canon(x)).collect::<Vec<_>>());
    // Declared in C, defined in C (src/qmsgf.c includes mbus.h, so the
    // compiler checks it).
    let c_defined = ["mbus_qmsgf"];
    // Exported for the C shim only.
    let internal = ["rmbus_qmsgf_failed"];
    for (name, sig) in &declared {
        if c_defined.contains(&name.as_str()) {
            continue;
        }
        let ours = rust
            .functions
            .get(name)
            .unwrap_or_else(|| panic!("{name} is declared but not exported"));
        assert_eq!(
            canon_sig(sig),
            canon_sig(ours),
            "{name}: header (left) and Rust (right) differ"
        );
    }
    for name in rust.functions.keys() {
        assert!(
            declared.contains_key(name) || internal.contains(&name.as_str()),
            "{name} is exported but no header declares it"
        );
    }
    assert_eq!(typedefs.len(), rust.callbacks.len());
    for (name, sig) in &typedefs {
        let ours = rust
            .callbacks
            .get(name)
            .unwrap_or_else(|| panic!("no Rust type for {name}"));
        assert_eq!(canon_sig(sig), canon_sig(ours), "{name}");
    }
    // The UCL handlers are UCL's types.
    assert_eq!(
        declared["mbus_init"].1[..2],
        [
            "void (*)(char *, char *, char *, void *)".to_string(),
            "void (*)(int, int)".to_string()
        ]
    );
}

#[test]
fn rmbus_return_has_the_same_fields_in_the_same_order() {
    let rust = rust_side();
    let header = read("include/rmbus.h");
    let body = header
        .split("typedef struct rmbus_return {")
        .nth(1)
        .unwrap();
    let body = &body[..body.find('}').unwrap()];
    let fields: Vec<(String, String)> = body
        .split(';')
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let mut t = c_tokens(f);
            let name = t.pop().unwrap();
            (name, t.join(" "))
        })
        .collect();
    assert_eq!(fields, rust.return_fields);
}

#[test]
fn the_constants_have_the_same_values() {
    let rust = rust_side();
    let mut c = BTreeMap::new();
    for line in read("include/mbus.h").lines() {
        if let Some(def) = line.trim().strip_prefix("#define MBUS_") {
            let mut words = def.split_whitespace();
            let (name, value) = (words.next().unwrap(), words.next().unwrap());
            c.insert(format!("MBUS_{name}"), value.parse::<i64>().unwrap());
        }
    }
    let code = c_code(&read("include/rmbus.h"));
    let body = code.split("enum rmbus_code {").nth(1).unwrap();
    for item in body[..body.find('}').unwrap()].split(',') {
        if let Some((name, value)) = item.split_once('=') {
            c.insert(name.trim().to_owned(), value.trim().parse::<i64>().unwrap());
        }
    }
    assert_eq!(c.len(), 16, "{c:?}");
    for (name, value) in &c {
        assert_eq!(rust.constants.get(name), Some(value), "{name}");
    }
}
