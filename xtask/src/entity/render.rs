//! The templates' one syntax, so a template reads as the Rust it becomes: `@name@` is a value (`@Entity@` ->
//! `Order`), a line `@@name@@` is a block of generated lines indented like the marker, and lines between
//! `@@if flag`, `@@else` and `@@end` are kept or dropped by a flag (they nest).

/// What a template is filled with.
#[derive(Debug, Default)]
pub struct Context {
    values: Vec<(&'static str, String)>,
    flags: Vec<(&'static str, bool)>,
    blocks: Vec<(&'static str, Vec<String>)>,
}

impl Context {
    /// Sets the value `@name@` stands for.
    pub fn value(&mut self, name: &'static str, value: impl Into<String>) {
        self.values.push((name, value.into()));
    }

    /// Sets the flag `@@if name` tests.
    pub fn flag(&mut self, name: &'static str, on: bool) {
        self.flags.push((name, on));
    }

    /// Sets the lines `@@name@@` stands for (without indentation; an empty line stays empty).
    pub fn block(&mut self, name: &'static str, lines: Vec<String>) {
        self.blocks.push((name, lines));
    }

    /// `template` filled in. A name the context does not know is left as written, which the generator's tests
    /// catch (no `@` survives in what they render).
    pub fn render(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() * 2);
        // One entry per open `@@if`: whether its current branch is kept.
        let mut kept: Vec<bool> = Vec::new();
        for line in template.split_inclusive('\n') {
            let marker = line.trim();
            if let Some(flag) = marker.strip_prefix("@@if ") {
                kept.push(self.flags.iter().any(|(name, on)| *name == flag && *on));
                continue;
            }
            if marker == "@@else" {
                if let Some(branch) = kept.last_mut() {
                    *branch = !*branch;
                }
                continue;
            }
            if marker == "@@end" {
                kept.pop();
                continue;
            }
            if !kept.iter().all(|branch| *branch) {
                continue;
            }
            let block = marker.strip_prefix("@@").and_then(|m| m.strip_suffix("@@"));
            if let Some(lines) = block.and_then(|name| self.blocks.iter().find(|(n, _)| *n == name)) {
                let indent: String = line.chars().take_while(|c| *c == ' ').collect();
                for generated in &lines.1 {
                    if !generated.is_empty() {
                        out.push_str(&indent);
                        out.push_str(&self.fill(generated));
                    }
                    out.push('\n');
                }
                continue;
            }
            out.push_str(&self.fill(line));
        }
        out
    }

    /// `template` filled in, with its comments re-wrapped to `width` characters: a value's length moves where a
    /// comment's lines should break, and rustfmt leaves comments as they are.
    pub fn render_wrapped(&self, template: &str, width: usize) -> String {
        rewrap_comments(&self.render(template), width)
    }

    /// `text` with each known `@name@` replaced.
    fn fill(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('@') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            let known = after[name_len..]
                .starts_with('@')
                .then(|| self.values.iter().find(|(name, _)| *name == &after[..name_len]))
                .flatten();
            match known {
                Some((_, value)) => {
                    out.push_str(value);
                    rest = &after[name_len + 1..];
                }
                None => {
                    out.push('@');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// `source` with each run of comment lines (same indentation, same `//!`, `///` or `//`; an empty comment line
/// ends a paragraph) re-filled greedily to `width` characters.
pub fn rewrap_comments(source: &str, width: usize) -> String {
    let mut out = String::with_capacity(source.len());
    let mut run: Option<(String, Vec<String>)> = None;
    let flush = |out: &mut String, run: &mut Option<(String, Vec<String>)>| {
        let Some((prefix, words)) = run.take() else { return };
        let mut line = String::new();
        for word in words {
            if !line.is_empty() && prefix.len() + line.chars().count() + 1 + word.chars().count() > width {
                out.push_str(&format!("{prefix}{line}\n"));
                line.clear();
            }
            line.push(' ');
            line.push_str(&word);
        }
        out.push_str(&format!("{prefix}{line}\n"));
    };
    for line in source.split_inclusive('\n') {
        let content = line.trim_end_matches('\n');
        let indent = &content[..content.len() - content.trim_start().len()];
        let marker = ["//! ", "/// ", "// "].into_iter().find(|m| content.trim_start().starts_with(m));
        match marker {
            Some(marker) => {
                let prefix = format!("{indent}{}", marker.trim_end());
                let words = content.trim_start()[marker.len()..].split_whitespace().map(str::to_owned);
                match &mut run {
                    Some((open, collected)) if *open == prefix => collected.extend(words),
                    _ => {
                        flush(&mut out, &mut run);
                        run = Some((prefix, words.collect()));
                    }
                }
            }
            None => {
                flush(&mut out, &mut run);
                out.push_str(line);
            }
        }
    }
    flush(&mut out, &mut run);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_blocks_and_nested_flags_fill_a_template() {
        let mut context = Context::default();
        context.value("Entity", "Order");
        context.value("entity", "order");
        context.flag("unique", true);
        context.flag("text", false);
        context.block("fields", vec!["pub name: String,".into(), String::new(), "pub note: @Entity@Note,".into()]);
        let template = "struct @Entity@ {\n    @@fields@@\n}\n@@if unique\nunique @entity@\n@@if text\ntext\n@@else\nno text\n@@end\n@@else\nnot unique\n@@end\nkept @unknown@ a@b\n";
        assert_eq!(
            context.render(template),
            "struct Order {\n    pub name: String,\n\n    pub note: OrderNote,\n}\nunique order\nno text\nkept @unknown@ a@b\n"
        );
    }

    #[test]
    fn comment_runs_are_refilled_to_the_width_and_code_is_left_alone() {
        let source = "//! one two\n//! three four five\n//!\n//! six\nfn f() {\n    /// a b\n    /// c\n    let x = 1; // d\n}\n";
        assert_eq!(
            rewrap_comments(source, 14),
            "//! one two\n//! three four\n//! five\n//!\n//! six\nfn f() {\n    /// a b c\n    let x = 1; // d\n}\n"
        );
    }
}
