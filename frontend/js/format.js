// Small display helpers shared by the result, the cards and the detail view.

export const percent = (p) => `${(Number(p) * 100).toFixed(1)}%`;

export const labelText = (label) => (label === "NonCOVID" ? "Non-COVID" : String(label));

export const labelClass = (label) => (label === "COVID" ? "is-covid" : "is-noncovid");

export function formatDate(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function modelText(model) {
  if (!model) return "";
  return `${model.name ?? "unknown model"} ${model.version ?? ""}`.trim();
}
