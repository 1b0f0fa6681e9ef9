//! XEP-0004 data forms, as far as the push roles read and write them.
//!
//! Reading is lenient on purpose: Conversations sends fields without `type` and without
//! `FORM_TYPE`, Prosody sends empty `<field/>`s, and none of the push roles depends on the form
//! type (docs/protocol.md B §1.5, §3.1).

use std::borrow::Cow;

use rxml::xml_ncname;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;

/// The first `<x xmlns='jabber:x:data'/>` child of `parent`.
pub(crate) fn first_form(parent: &Element) -> Option<&Element> {
    parent
        .children()
        .find(|child| child.is("x", ns::DATA_FORMS))
}

/// The fields named `var`, in document order.
fn fields<'a>(form: &'a Element, var: &'a str) -> impl Iterator<Item = &'a Element> {
    form.children()
        .filter(move |child| child.is("field", ns::DATA_FORMS) && child.attr("var") == Some(var))
}

/// Whether the form has a field named `var`, with or without a value.
pub(crate) fn has_field(form: &Element, var: &str) -> bool {
    fields(form, var).next().is_some()
}

/// The first value of the fields named `var`: a field without `<value/>` is skipped, so an
/// empty placeholder field does not hide a later one.
pub(crate) fn field_value<'a>(form: &'a Element, var: &'a str) -> Option<Cow<'a, str>> {
    fields(form, var)
        .find_map(|field| field.get_child("value", ns::DATA_FORMS))
        .map(text)
}

/// The character data of an element, borrowed when it is one text node (the usual case).
fn text(element: &Element) -> Cow<'_, str> {
    let mut texts = element.texts();
    match (texts.next(), texts.next()) {
        (None, _) => Cow::Borrowed(""),
        (Some(only), None) => Cow::Borrowed(only),
        _ => Cow::Owned(element.text()),
    }
}

/// A `type='form'` form of `text-single` fields, as p2 answers a registration (docs/protocol.md
/// B §1.2: Babbler's `Field.Builder.value(String)` makes every field `text-single`).
pub(crate) fn text_single_form(fields: &[(&str, &str)]) -> Element {
    let fields = fields.iter().map(|(var, value)| {
        Element::builder("field", ns::DATA_FORMS)
            .attr(xml_ncname!("var").to_owned(), *var)
            .attr(xml_ncname!("type").to_owned(), "text-single")
            .append(
                Element::builder("value", ns::DATA_FORMS)
                    .append((*value).to_owned())
                    .build(),
            )
            .build()
    });
    Element::builder("x", ns::DATA_FORMS)
        .attr(xml_ncname!("type").to_owned(), "form")
        .append_all(fields)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        xml.parse().expect("test XML")
    }

    #[test]
    fn values_are_read_without_types_or_form_type() {
        let form = parse(
            "<x xmlns='jabber:x:data' type='submit'><field var='token'><value>T</value></field>\
             <field var='android-id'><value>A</value></field></x>",
        );
        assert_eq!(field_value(&form, "token").as_deref(), Some("T"));
        assert_eq!(field_value(&form, "android-id").as_deref(), Some("A"));
        assert_eq!(field_value(&form, "device-id"), None);
    }

    #[test]
    fn empty_fields_are_skipped_and_empty_values_kept() {
        let form = parse(
            "<x xmlns='jabber:x:data'><field var='secret'/>\
             <field var='secret' type='text-single'><value>s</value></field>\
             <field var='empty'><value/></field></x>",
        );
        assert_eq!(field_value(&form, "secret").as_deref(), Some("s"));
        assert_eq!(field_value(&form, "empty").as_deref(), Some(""));
        assert!(has_field(&form, "empty"));
        assert!(!has_field(&form, "muc"));
    }

    #[test]
    fn fields_of_another_namespace_do_not_count() {
        let form = parse(
            "<x xmlns='jabber:x:data'><field xmlns='urn:other' var='secret'><value>s</value></field></x>",
        );
        assert_eq!(field_value(&form, "secret"), None);
    }

    #[test]
    fn the_answer_form_has_text_single_fields_in_order() {
        let form = text_single_form(&[("jid", "p2.example"), ("node", "n")]);
        assert!(form.is("x", ns::DATA_FORMS));
        assert_eq!(form.attr("type"), Some("form"));
        let fields: Vec<_> = form.children().collect();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].attr("var"), Some("jid"));
        assert_eq!(fields[0].attr("type"), Some("text-single"));
        assert_eq!(field_value(&form, "node").as_deref(), Some("n"));
    }
}
