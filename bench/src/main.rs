//! `wsgate-bench`: the load tool (work in progress).

fn main() {}
