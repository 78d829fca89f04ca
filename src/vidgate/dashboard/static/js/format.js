// How times and credits read on the page.

export const when = (seconds) =>
  seconds === null || seconds === undefined ? "—" : new Date(seconds * 1000).toLocaleString();

export const credits = (value) =>
  value === null || value === undefined
    ? "—"
    : Number(value).toLocaleString(undefined, {
        minimumFractionDigits: 2,
        maximumFractionDigits: 2,
      });

export const signed = (value) => (Number(value) > 0 ? "+" : "") + credits(value);
