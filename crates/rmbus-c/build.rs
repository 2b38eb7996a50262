//! Compiles the one piece of C in the library: `mbus_qmsgf`'s printf-style
//! formatting (a variadic function, which stable Rust cannot define).

fn main() {
    println!("cargo:rerun-if-changed=src/qmsgf.c");
    println!("cargo:rerun-if-changed=include/mbus.h");
    cc::Build::new()
        .file("src/qmsgf.c")
        .include("include")
        .warnings(true)
        .compile("rmbus_qmsgf");
    // rustc's version script exports only Rust's own `#[no_mangle]`
    // symbols from a cdylib: the C function is exported by name here.
    let map = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("src/exports.map");
    println!("cargo:rerun-if-changed=src/exports.map");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );
}
