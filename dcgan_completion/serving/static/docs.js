// A small, offline stand-in for Swagger UI: lists every operation of /openapi.json with its
// parameters, form fields and responses, and sends a request from a form ("Try it").
"use strict";

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
};

let spec = null;
const resolve = (schema) => {
  while (schema && schema.$ref) schema = spec.components.schemas[schema.$ref.split("/").pop()];
  return schema || {};
};

function variants(schema) {
  schema = resolve(schema);
  return (schema.anyOf || schema.oneOf || [schema]).map(resolve);
}

function typeOf(schema) {
  return variants(schema).map((s) => {
    if (s.type === "null") return "null";
    if (s.contentMediaType || s.format === "binary") return "file";
    if (s.enum) return s.enum.join(" | ");
    return s.type || "any";
  }).join(" | ");
}

const isFile = (schema) => variants(schema).some((s) => s.contentMediaType || s.format === "binary");
const enumOf = (schema) => (variants(schema).find((s) => s.enum) || {}).enum;

function inputFor(name, schema) {
  if (isFile(schema)) return el("input", {type: "file", name});
  const values = enumOf(schema);
  if (values) return el("select", {name}, el("option", {value: ""}, "—"), values.map((v) => el("option", {value: v}, v)));
  if (variants(schema).some((s) => s.type === "boolean")) {
    return el("select", {name}, el("option", {value: ""}, "—"), el("option", {value: "true"}, "true"),
      el("option", {value: "false"}, "false"));
  }
  return el("input", {type: "text", name, placeholder: typeOf(schema)});
}

function fieldRows(fields) {
  return el("table", {class: "params"},
    el("thead", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "description"))),
    el("tbody", {}, fields.map((f) => el("tr", {},
      el("td", {}, el("code", {}, f.name), f.required ? el("span", {class: "required"}, " *") : null),
      el("td", {}, f.in), el("td", {}, el("code", {}, typeOf(f.schema))),
      el("td", {}, f.description || "", f.schema && resolve(f.schema).default !== undefined
        ? el("span", {class: "hint"}, ` (default ${JSON.stringify(resolve(f.schema).default)})`) : null)))));
}

function operation(path, method, op) {
  const fields = (op.parameters || []).map((p) => ({name: p.name, in: p.in, required: p.required,
    description: p.description || (p.schema || {}).description, schema: p.schema}));
  const body = op.requestBody && op.requestBody.content && op.requestBody.content["multipart/form-data"];
  if (body) {
    const schema = resolve(body.schema);
    for (const [name, property] of Object.entries(schema.properties || {})) {
      fields.push({name, in: "form", required: (schema.required || []).includes(name),
        description: property.description, schema: property});
    }
  }
  const output = el("div", {class: "try-output"});
  const form = el("form", {class: "try"}, fields.map((f) => el("label", {}, el("span", {}, f.name), inputFor(f.name, f.schema))),
    el("button", {type: "submit", class: "button primary"}, "Send"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let url = path;
    const query = new URLSearchParams(), data = new FormData();
    let hasBody = false;
    for (const f of fields) {
      const input = form.elements[f.name];
      if (f.in === "form" && input.type === "file") {
        if (input.files.length) { data.append(f.name, input.files[0]); hasBody = true; }
        continue;
      }
      if (input.value === "") continue;
      if (f.in === "path") url = url.replace(`{${f.name}}`, encodeURIComponent(input.value));
      else if (f.in === "query") query.set(f.name, input.value);
      else { data.append(f.name, input.value); hasBody = true; }
    }
    if ([...query].length) url += `?${query}`;
    output.replaceChildren(el("p", {class: "hint"}, `${method.toUpperCase()} ${url} …`));
    try {
      const response = await fetch(url, {method: method.toUpperCase(), body: body || hasBody ? data : undefined});
      const type = response.headers.get("content-type") || "";
      let shown;
      if (type.startsWith("image/")) shown = el("img", {src: URL.createObjectURL(await response.blob()), class: "try-image"});
      else if (type.startsWith("text/event-stream")) shown = el("pre", {}, "(an event stream: open it with EventSource)");
      else {
        const text = await response.text();
        try { shown = el("pre", {}, JSON.stringify(JSON.parse(text), null, 2)); } catch (_) { shown = el("pre", {}, text); }
      }
      output.replaceChildren(el("p", {}, el("strong", {}, `${response.status} ${response.statusText}`),
        el("span", {class: "hint"}, ` ${type}`)), shown);
    } catch (error) {
      output.replaceChildren(el("p", {class: "status error"}, error.message));
    }
  });
  const responses = Object.entries(op.responses || {}).map(([status, r]) => el("li", {},
    el("code", {}, status), " ", r.description || "", r.content ? el("span", {class: "hint"}, ` (${Object.keys(r.content).join(", ")})`) : null));
  return el("details", {class: `card op ${method}`, id: op.operationId || `${method}-${path}`},
    el("summary", {}, el("span", {class: `method ${method}`}, method.toUpperCase()), el("code", {class: "path"}, path),
      el("span", {class: "summary"}, op.summary || "")),
    el("div", {class: "op-body"},
      op.description ? el("p", {class: "op-description"}, op.description) : null,
      fields.length ? fieldRows(fields) : el("p", {class: "hint"}, "No parameters."),
      el("h3", {}, "Responses"), el("ul", {class: "responses"}, responses),
      el("h3", {}, "Try it"), form, output));
}

async function main() {
  const response = await fetch("/openapi.json");
  spec = await response.json();
  document.title = `${spec.info.title} · API`;
  document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version}`;
  document.getElementById("description").textContent = spec.info.description || "";
  const operations = [];
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) operations.push(operation(path, method, op));
  }
  document.getElementById("operations").replaceChildren(...operations);
}

main().catch((error) => {
  document.getElementById("operations").replaceChildren(el("p", {class: "status error"}, `Cannot read /openapi.json: ${error.message}`));
});
