// A tiny element builder: text is always set as text (never parsed as HTML).
type Child = Node | string | null | undefined | false;
type Attributes = Record<string, string | boolean | number | ((event: Event) => void) | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attributes: Attributes = {},
                                                        ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") {
      element.addEventListener(name.replace(/^on/, "").toLowerCase(), value);
    } else if (name === "class") {
      element.className = String(value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return element;
}

let counter = 0;

// A labelled input: the label names the field for screen readers and for tests.
export function field(label: string, attributes: Attributes, hint?: string): { wrapper: HTMLElement; input: HTMLInputElement } {
  const id = `f${++counter}`;
  const hintId = hint ? `${id}-hint` : undefined;
  const input = h("input", { id, ...(hintId ? { "aria-describedby": hintId } : {}), ...attributes });
  const wrapper = h("div", { class: "field" },
    h("label", { for: id }, label),
    hint ? h("p", { id: hintId, class: "hint" }, hint) : null,
    input);
  return { wrapper, input };
}
