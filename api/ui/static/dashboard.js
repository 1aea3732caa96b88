// The dashboard's only script: draws the overview's ECharts charts from the JSON the page
// carries, and ticks every row of the laggard list with "select all". No network calls.
(function () {
  "use strict";
  var COLORS = { red: "#d93025", yellow: "#f2b705", blue: "#1a73e8", green: "#188038" };
  var LABELS = { red: "逾期", yellow: "滞后", blue: "临期", green: "正常" };

  function drawCharts() {
    var holder = document.getElementById("chart-data");
    if (!holder || typeof echarts === "undefined") return;
    var data = JSON.parse(holder.textContent);
    var big = document.body.classList.contains("big");
    var text = { color: big ? "#f2f2f2" : "#333", fontSize: big ? 18 : 12 };
    var completion = echarts.init(document.getElementById("chart-completion"));
    completion.setOption({
      animation: false,
      title: data.completion.times.length ? undefined :
        { text: "暂无阶段完成记录", left: "center", top: "middle", textStyle: text },
      textStyle: text,
      tooltip: { trigger: "axis" },
      legend: { textStyle: text },
      grid: { left: 50, right: 20, top: 40, bottom: 40 },
      xAxis: { type: "category", data: data.completion.times, axisLabel: text },
      yAxis: { type: "value", name: "完成单位数", axisLabel: text },
      series: data.completion.series.map(function (s) {
        return { name: s.name, type: "line", step: "end", data: s.data, showSymbol: false };
      }),
    });
    var lights = echarts.init(document.getElementById("chart-lights"));
    lights.setOption({
      animation: false,
      textStyle: text,
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      legend: { textStyle: text },
      grid: { left: 50, right: 20, top: 40, bottom: 60 },
      xAxis: { type: "category", data: data.lights.townships, axisLabel: Object.assign({ rotate: 30 }, text) },
      yAxis: { type: "value", axisLabel: text },
      series: data.lights.series.map(function (s) {
        return { name: LABELS[s.key], type: "bar", stack: "lights", data: s.data,
                 itemStyle: { color: COLORS[s.key] } };
      }),
    });
    document.body.dataset.chartsReady = "1";
    window.addEventListener("resize", function () { completion.resize(); lights.resize(); });
  }

  function selectAll() {
    var all = document.getElementById("check-all");
    if (!all) return;
    all.addEventListener("change", function () {
      document.querySelectorAll('#laggard-table input[name="org_id"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(); selectAll(); });
})();
