/** @type {import('tailwindcss').Config} */
module.exports = {
  // Classes are found in the templ sources and our own scripts.
  content: ['./views/**/*.templ', './static/src/**/*.js'],
  // Built from a prefix and a status kind in Go (components.statusKind),
  // so they never appear whole in the sources.
  safelist: ['st-ok', 'st-idle', 'st-bad', 'st-warn', 'st-busy'],
  darkMode: 'class',
  theme: {
    extend: {
      fontFamily: {
        sans: ['ui-sans-serif', 'system-ui', '-apple-system', 'Segoe UI', 'Roboto', 'Helvetica Neue', 'Arial', 'sans-serif'],
        mono: ['ui-monospace', 'SFMono-Regular', 'Menlo', 'Consolas', 'Liberation Mono', 'monospace'],
      },
    },
  },
  plugins: [],
};
